import { LabIcon } from '@jupyterlab/ui-components';

/** A shipping container, drawn with the theme's icon colour so it follows light and dark. */
const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16">
  <g class="jp-icon3" fill="#616161">
    <path d="M2 7.5 12 3l10 4.5v9L12 21 2 16.5zm2 1.3v6.5l7 3.2v-6.5zm9 3.2v6.5l7-3.2V8.8zM5 7.6l7 3.1 7-3.1-7-3.1z"/>
  </g>
</svg>`;

export const containerIcon = new LabIcon({ name: 'pydock:container', svgstr: svg });
