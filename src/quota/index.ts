export { createImage, mkfsExt4Args, mountImage, unmountImage, ImageFs, ImageAttributes } from './image';
export { canGrowMountedExt4, growImage, imageBehind, GrowResult } from './grow';
export { freeze, withFrozen, Freeze } from './freeze';
export { adoptImageCopy, copyImageFile, copyTree, reflinksIn, withImageMounted } from './copy';
export { mountSnapshot, MountedSnapshot } from './snapshot';
