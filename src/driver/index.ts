export { VolumeDriver, VolumeInfo } from './driver';
export { HostState, VolumeRecord, STATE_VERSION, emptyState, openLedger, upgradeState } from './ledger';
export { validateVolumeName } from './names';
export { parseVolumeOptions, parseSize, formatSize, ACCEPTED_OPTIONS } from './options';
export { buildBackends } from './backends';
export { HOSTS_FOLDER, parseHostFile, HostFile, Presence, Handover } from './presence';
export { startCaretakers, stopCaretakers } from './caretaker';
