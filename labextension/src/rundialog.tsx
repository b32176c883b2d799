/** The "Run" dialog: `docker run -d` with a name, ports, environment, volumes and a command. */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import React, { useState } from 'react';

import { errorMessage, Requester } from './model';
import { IRunForm, runContainer } from './run';

interface IFieldProps {
  label: string;
  field: keyof IRunForm;
  form: IRunForm;
  placeholder: string;
  multiline?: boolean;
  options?: string[];
}

function Field({ label, field, form, placeholder, multiline, options }: IFieldProps): JSX.Element {
  const [value, setValue] = useState(form[field]);
  const change = (v: string): void => {
    form[field] = v; // the dialog reads the form object when it closes
    setValue(v);
  };
  const common = {
    className: 'jp-mod-styled',
    name: field,
    'aria-label': label,
    placeholder,
    value,
    onChange: (e: React.ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) => change(e.target.value)
  };
  return (
    <label className="jp-PydockRun-field">
      <span>{label}</span>
      {multiline ? (
        <textarea rows={2} {...common} />
      ) : (
        <input {...common} list={options ? `pydock-run-${field}` : undefined} />
      )}
      {options && (
        <datalist id={`pydock-run-${field}`}>
          {options.map(o => (
            <option key={o} value={o} />
          ))}
        </datalist>
      )}
    </label>
  );
}

/** The dialog's body; it edits a plain form object that `getValue` hands back. */
class RunBody extends ReactWidget implements Dialog.IBodyWidget<IRunForm> {
  constructor(
    private form: IRunForm,
    private images: string[],
    private error: string | null
  ) {
    super();
    this.addClass('jp-PydockRun');
  }

  getValue(): IRunForm {
    return this.form;
  }

  render(): JSX.Element {
    const form = this.form;
    return (
      <div className="jp-PydockRun-form">
        {this.error && (
          <div className="jp-PydockPanel-error jp-PydockRun-error" role="alert">
            {this.error}
          </div>
        )}
        <Field label="Image" field="image" form={form} placeholder="busybox:latest" options={this.images} />
        <Field label="Name" field="name" form={form} placeholder="(a generated name)" />
        <Field label="Ports" field="ports" form={form} placeholder="8080:80, 127.0.0.1:9000:9000/udp" />
        <Field label="Environment" field="env" form={form} placeholder="KEY=value, one per line" multiline />
        <Field
          label="Volumes"
          field="volumes"
          form={form}
          placeholder="volume-or-path:/in/container[:ro], one per line"
          multiline
        />
        <Field label="Command" field="command" form={form} placeholder="(the image's default)" />
      </div>
    );
  }
}

/**
 * Asks for the run options and runs the container; a refusal (a malformed
 * field, or the engine's own message) reopens the dialog with the values kept
 * and the message on top. Resolves to the new container's ID, or null if cancelled.
 */
export async function showRunDialog(request: Requester, image: string, images: string[]): Promise<string | null> {
  const form: IRunForm = { image, name: '', ports: '', env: '', volumes: '', command: '' };
  let error: string | null = null;
  for (;;) {
    const result = await showDialog({
      title: image ? `Run ${image}` : 'Run a container',
      body: new RunBody(form, images, error),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run' })],
      focusNodeSelector: image ? 'input[name="name"]' : 'input[name="image"]'
    });
    if (!result.button.accept) {
      return null;
    }
    try {
      return await runContainer(request, form);
    } catch (err) {
      error = errorMessage(err);
    }
  }
}
