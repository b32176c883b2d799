/** The volume and network sections: a create form and one row per object with inspect and remove. */
import { addIcon, deleteIcon, inspectorIcon } from '@jupyterlab/ui-components';
import { UseSignal } from '@jupyterlab/ui-components';
import React, { useState } from 'react';

import { IAction, Report, RowActions, useBusy } from './buttons';
import { shortId } from './format';
import { INetwork, InspectKind, IVolume, PREDEFINED_NETWORKS, SectionModel } from './resources';

/** What a volume or network section asks of the application. */
export interface ISectionActions {
  inspect(kind: InspectKind, id: string, name: string): void;
  /** Asks before removing; resolves to false when the user declined. */
  confirmRemove(what: string, name: string): Promise<boolean>;
  report: Report;
}

interface IRowText {
  name: string;
  detail: string[];
  /** Built-in objects (the predefined networks) have no remove action. */
  removable: boolean;
}

interface ISectionProps<T> {
  section: SectionModel<T>;
  /** Singular noun for labels and messages: "volume", "network". */
  noun: string;
  kind: InspectKind;
  text: (item: T) => IRowText;
  actions: ISectionActions;
}

function Section<T>({ section, noun, kind, text, actions }: ISectionProps<T>): JSX.Element {
  return (
    <UseSignal signal={section.changed}>
      {() => (
        <div className={`jp-PydockSection jp-PydockSection-${kind}`}>
          <CreateForm noun={noun} create={name => section.create(name)} report={actions.report} />
          {section.error && <div className="jp-PydockPanel-error">{section.error}</div>}
          {section.items.length === 0 ? (
            <div className="jp-PydockPanel-empty">No {noun}s — create one above.</div>
          ) : (
            <ul className="jp-PydockPanel-list">
              {section.items.map(item => (
                <SectionRow key={text(item).name} {...{ section, noun, kind, item, text: text(item), actions }} />
              ))}
            </ul>
          )}
        </div>
      )}
    </UseSignal>
  );
}

interface IRowProps<T> {
  section: SectionModel<T>;
  noun: string;
  kind: InspectKind;
  item: T;
  text: IRowText;
  actions: ISectionActions;
}

function SectionRow<T>({ section, noun, kind, item, text, actions }: IRowProps<T>): JSX.Element {
  const [busy, run] = useBusy();
  const rowActions: IAction[] = [
    { icon: inspectorIcon, label: `Inspect ${noun}`, onClick: async () => actions.inspect(kind, text.name, text.name) }
  ];
  if (text.removable) {
    rowActions.push({
      icon: deleteIcon,
      label: `Remove ${noun}`,
      onClick: async () => {
        if (await actions.confirmRemove(noun, text.name)) {
          await section.remove(item);
        }
      }
    });
  }
  return (
    <li className={`jp-PydockPanel-item jp-PydockResource jp-PydockResource-${noun}`} data-name={text.name}>
      <div className="jp-PydockPanel-main">
        <div className="jp-PydockPanel-title" title={text.name}>
          {text.name}
        </div>
        <div className="jp-PydockPanel-detail">
          {text.detail.map((d, i) => (
            <span key={i}>{d}</span>
          ))}
        </div>
      </div>
      <RowActions actions={rowActions} report={actions.report} busy={busy !== null} run={run} />
    </li>
  );
}

function CreateForm({
  noun,
  create,
  report
}: {
  noun: string;
  create: (name: string) => Promise<void>;
  report: Report;
}): JSX.Element {
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: React.FormEvent): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    try {
      // An empty name is Docker's too: the engine picks one (volumes) or says why not (networks).
      await create(name.trim());
      setName('');
    } catch (err) {
      report(`Create ${noun} failed`, err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="jp-PydockPull-form jp-PydockCreate-form" onSubmit={e => void submit(e)}>
      <input
        className="jp-mod-styled jp-PydockPull-input"
        placeholder={`new ${noun} name`}
        aria-label={`New ${noun} name`}
        value={name}
        disabled={busy}
        onChange={e => setName(e.target.value)}
      />
      <button
        type="submit"
        className="jp-PydockButton"
        title={`Create ${noun}`}
        aria-label={`Create ${noun}`}
        disabled={busy}
      >
        <addIcon.react tag="span" className="jp-PydockButton-icon" />
      </button>
    </form>
  );
}

export function VolumeSection(props: { section: SectionModel<IVolume>; actions: ISectionActions }): JSX.Element {
  return (
    <Section
      {...props}
      noun="volume"
      kind="volumes"
      text={v => ({ name: v.Name, detail: [v.Driver], removable: true })}
    />
  );
}

export function NetworkSection(props: { section: SectionModel<INetwork>; actions: ISectionActions }): JSX.Element {
  return (
    <Section
      {...props}
      noun="network"
      kind="networks"
      text={n => ({
        name: n.Name,
        detail: [shortId(n.Id), n.Driver, n.Scope],
        removable: !PREDEFINED_NETWORKS.includes(n.Name)
      })}
    />
  );
}
