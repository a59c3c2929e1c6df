export { createImage, mountImage, unmountImage, ImageFs, ImageAttributes } from './image';
