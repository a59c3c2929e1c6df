export { loadConfig, buildConfig } from './load';
export type { Config, BackendConfig } from './schema';
