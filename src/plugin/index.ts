export { createApp, errText } from './api';
export { listenOnSocket, SocketServer } from '../system';
export type { VolumeDriverApi, VolumeView, DockerVolume } from './types';
export { announceToDocker, pluginNameOf, dockerSocketOf, type Announcement, type AnnounceOptions } from './announce';
export { releaseMountsDockerdForgot, type StaleMountRelease } from './reconcile';
