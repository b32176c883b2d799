/** The image section: pull, tags, and per image run, history, inspect and remove. */
import {
  closeIcon,
  deleteIcon,
  downloadIcon,
  historyIcon,
  inspectorIcon,
  runIcon
} from '@jupyterlab/ui-components';
import React, { useState } from 'react';

import { IAction, Report, RowActions, useBusy } from './buttons';
import { humanSize, imageTags, shortId, timeAgo } from './format';
import { DockerModel, IImage, IPull } from './model';

/** What the image section asks of the application. */
export interface IImageActions {
  removeImage(image: IImage): Promise<void>;
  pull(reference: string): Promise<void>;
  run(image: string): Promise<void>;
  history(image: string, title: string): void;
  inspect(kind: 'images', id: string, name: string): void;
  report: Report;
}

interface IProps {
  model: DockerModel;
  actions: IImageActions;
}

export function ImageSection({ model, actions }: IProps): JSX.Element {
  return (
    <>
      <PullForm actions={actions} />
      {model.pulls.map((p, i) => (
        <PullRow key={`${p.reference}-${i}`} pull={p} onDismiss={() => model.dismissPull(p)} />
      ))}
      {model.images.length === 0 ? (
        <div className="jp-PydockPanel-empty">No images — pull one above.</div>
      ) : (
        <ul className="jp-PydockPanel-list jp-PydockImages">
          {model.images.map(img => (
            <ImageRow key={img.Id} image={img} actions={actions} />
          ))}
        </ul>
      )}
    </>
  );
}

function ImageRow({ image: img, actions }: { image: IImage; actions: IImageActions }): JSX.Element {
  const [busy, run] = useBusy();
  const tags = imageTags(img);
  // A tag names the image for run and history as the user knows it; an untagged one goes by ID.
  const ref = tags[0] === '<none>' ? img.Id : tags[0];
  const rowActions: IAction[] = [
    { icon: runIcon, label: 'Run', onClick: () => actions.run(ref) },
    { icon: historyIcon, label: 'History', onClick: async () => actions.history(ref, tags[0]) },
    { icon: inspectorIcon, label: 'Inspect image', onClick: async () => actions.inspect('images', img.Id, tags[0]) },
    { icon: deleteIcon, label: 'Remove image', onClick: () => actions.removeImage(img) }
  ];
  return (
    <li className="jp-PydockPanel-item jp-PydockImage" data-id={img.Id}>
      <div className="jp-PydockPanel-main">
        <div className="jp-PydockPanel-title" title={`${tags.join(', ')}\n${img.Id}`}>
          {tags.map(t => (
            <span key={t} className="jp-PydockTag">
              {t}
            </span>
          ))}
        </div>
        <div className="jp-PydockPanel-detail">
          <span>{shortId(img.Id)}</span>
          <span>{humanSize(img.Size)}</span>
          <span>{timeAgo(img.Created)}</span>
        </div>
      </div>
      <RowActions actions={rowActions} report={actions.report} busy={busy !== null} run={run} />
    </li>
  );
}

function PullForm({ actions }: { actions: IImageActions }): JSX.Element {
  const [reference, setReference] = useState('');
  const submit = (e: React.FormEvent): void => {
    e.preventDefault();
    const ref = reference.trim();
    if (ref) {
      setReference('');
      void actions.pull(ref);
    }
  };
  return (
    <form className="jp-PydockPull-form" onSubmit={submit}>
      <input
        className="jp-mod-styled jp-PydockPull-input"
        placeholder="image[:tag] to pull"
        aria-label="Image to pull"
        value={reference}
        onChange={e => setReference(e.target.value)}
      />
      <button type="submit" className="jp-PydockButton" title="Pull" aria-label="Pull">
        <downloadIcon.react tag="span" className="jp-PydockButton-icon" />
      </button>
    </form>
  );
}

function PullRow({ pull, onDismiss }: { pull: IPull; onDismiss: () => void }): JSX.Element {
  const { progress } = pull;
  const pct = Math.round(progress.fraction * 100);
  return (
    <div className={`jp-PydockPull ${progress.error ? 'jp-mod-error' : ''}`}>
      <div className="jp-PydockPull-head">
        <span className="jp-PydockPull-ref">{pull.reference}</span>
        {progress.error && (
          <button className="jp-PydockButton" title="Dismiss" aria-label="Dismiss" onClick={onDismiss}>
            <closeIcon.react tag="span" className="jp-PydockButton-icon" />
          </button>
        )}
      </div>
      <div
        className="jp-PydockPull-bar"
        role="progressbar"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct}
      >
        <div className="jp-PydockPull-fill" style={{ width: `${pct}%` }} />
      </div>
      <div className="jp-PydockPull-status">{progress.error ?? progress.status}</div>
    </div>
  );
}
