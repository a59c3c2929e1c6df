export type { Backend, BackendCapabilities, BackendContext, BackendType, BackendUsage, RootAttributes, AttachmentHealth } from './types';
export { backendType, backendTypes } from './registry';
export * from './layout';
