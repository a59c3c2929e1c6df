export { createImage, mkfsExt4Args, mountImage, unmountImage, ImageFs, ImageAttributes } from './image';
