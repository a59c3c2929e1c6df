export { VolumeDriver, VolumeInfo, HostState, VolumeRecord, STATE_VERSION, emptyState } from './driver';
export { validateVolumeName } from './names';
export { parseVolumeOptions, parseSize, formatSize, ACCEPTED_OPTIONS } from './options';
