export { createImage, mkfsExt4Args, mountImage, unmountImage, ImageFs, ImageAttributes } from './image';
export { canGrowMountedExt4, growImage, imageBehind, GrowResult } from './grow';
export { withFrozen } from './freeze';
export { adoptImageCopy, copyImageFile, copyTree, withImageMounted } from './copy';
export { freeze, reflinkCopy, mountSnapshot, Freeze, MountedSnapshot } from './snapshot';
