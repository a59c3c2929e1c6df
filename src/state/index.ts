export { StateStore } from './store';
