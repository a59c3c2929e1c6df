export { StateStore } from './store';
export { asKeyed, keyedRecord, keyedSchema, type Keyed } from './keyed';
