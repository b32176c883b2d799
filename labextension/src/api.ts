/**
 * The model's requests sent through Jupyter's own connection settings, so
 * they carry the token, XSRF cookie and base URL of the running JupyterLab.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { Requester } from './model';

/** The Docker Engine API version the client speaks (pydock serves 1.47). */
export const API_VERSION = 'v1.47';

export function jupyterRequester(
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Requester {
  return (path, init = {}) =>
    ServerConnection.makeRequest(
      URLExt.join(settings.baseUrl, 'pydock', API_VERSION, path),
      init,
      settings
    );
}
