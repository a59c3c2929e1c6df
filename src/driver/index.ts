export { VolumeDriver, VolumeInfo } from './driver';
export { HostState, VolumeRecord, STATE_VERSION, emptyState, openLedger, upgradeState } from './ledger';
export { validateVolumeName } from './names';
export { parseVolumeOptions, parseSize, formatSize, ACCEPTED_OPTIONS } from './options';
export { buildBackends } from './backends';
export { HostFile, Presence, Handover, readHostFiles } from './presence';
export { stopDataPath } from './fencing';
export { startCaretakers, stopCaretakers } from './caretaker';
export { Mounts, realMounts } from './mounts';
