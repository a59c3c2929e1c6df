export { createImage, mkfsExt4Args, mountImage, unmountImage, ImageFs, ImageAttributes } from './image';
export { freeze, imageBehind, reflinkCopy, mountSnapshot, Freeze, MountedSnapshot } from './snapshot';
