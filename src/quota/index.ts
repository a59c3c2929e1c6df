export { createImage, mkfsExt4Args, mountImage, unmountImage, ImageFs, ImageAttributes } from './image';
export { withFrozen } from './freeze';
export { adoptImageCopy, copyImageFile, copyTree, withImageMounted } from './copy';
