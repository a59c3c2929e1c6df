export { createAdminApp } from './server';
