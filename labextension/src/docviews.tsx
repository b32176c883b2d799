/** Main-area views opened from the panel: an object's inspect JSON and an image's history. */
import { Clipboard } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import { copyIcon } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { humanSize, shortId, timeAgo } from './format';
import { errorMessage, Requester } from './model';
import { IHistoryEntry, imageHistory, inspect, InspectKind } from './resources';

/** A document fetched once when the view opens: loading, then the value or the engine's message. */
function useLoaded<T>(load: () => Promise<T>): { value?: T; error?: string } {
  const [state, setState] = useState<{ value?: T; error?: string }>({});
  useEffect(() => {
    load().then(
      value => setState({ value }),
      err => setState({ error: errorMessage(err) })
    );
  }, []);
  return state;
}

function InspectBody({ load }: { load: () => Promise<unknown> }): JSX.Element {
  const { value, error } = useLoaded(load);
  const [copied, setCopied] = useState(false);
  if (error) {
    return <div className="jp-PydockPanel-error">{error}</div>;
  }
  if (value === undefined) {
    return <div className="jp-PydockPanel-empty">Loading…</div>;
  }
  // `docker inspect` indents by four spaces; the same text can be pasted into a diff against it.
  const text = JSON.stringify(value, null, 4);
  return (
    <>
      <div className="jp-PydockDoc-toolbar">
        <button
          className="jp-mod-styled jp-PydockDoc-copy"
          title="Copy the JSON to the clipboard"
          onClick={() => {
            Clipboard.copyToSystem(text);
            setCopied(true);
          }}
        >
          <copyIcon.react tag="span" className="jp-PydockButton-icon" />
          {copied ? 'Copied' : 'Copy'}
        </button>
      </div>
      <pre className="jp-PydockDoc-json">{text}</pre>
    </>
  );
}

/** One object's inspect document, as `docker inspect` prints it. */
export class InspectView extends ReactWidget {
  constructor(
    private request: Requester,
    private kind: InspectKind,
    private target: string
  ) {
    super();
    this.addClass('jp-PydockDoc');
    this.addClass('jp-PydockInspect');
  }

  render(): JSX.Element {
    return <InspectBody load={() => inspect(this.request, this.kind, this.target)} />;
  }
}

function HistoryBody({ load }: { load: () => Promise<IHistoryEntry[]> }): JSX.Element {
  const { value, error } = useLoaded(load);
  if (error) {
    return <div className="jp-PydockPanel-error">{error}</div>;
  }
  if (value === undefined) {
    return <div className="jp-PydockPanel-empty">Loading…</div>;
  }
  return (
    <table className="jp-PydockHistory-table">
      <thead>
        <tr>
          <th>IMAGE</th>
          <th>CREATED</th>
          <th>CREATED BY</th>
          <th>SIZE</th>
          <th>COMMENT</th>
        </tr>
      </thead>
      <tbody>
        {value.map((h, i) => (
          <tr key={i}>
            <td>{h.Id === '<missing>' ? h.Id : shortId(h.Id)}</td>
            <td>{timeAgo(h.Created)}</td>
            <td className="jp-PydockHistory-by" title={h.CreatedBy}>
              <code>{h.CreatedBy}</code>
            </td>
            <td>{humanSize(h.Size)}</td>
            <td>{h.Comment}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** An image's layers with the step that made each, as `docker history` lists them. */
export class HistoryView extends ReactWidget {
  constructor(
    private request: Requester,
    private image: string
  ) {
    super();
    this.addClass('jp-PydockDoc');
    this.addClass('jp-PydockHistory');
  }

  render(): JSX.Element {
    return <HistoryBody load={() => imageHistory(this.request, this.image)} />;
  }
}
