// web/src/main.js — entry point: hash routing (a link reproduces a view),
// the API-key button, and page switching.
//   #/                      status page          #/service?name=&range=   service view
//   #/explore?q=&view=      explorer             #/incidents?state=&q=    incident list
//   #/incident/ID           one incident
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { getKey, parseHash, setKey } from './util.js';
import { hideTip, installBarEvents, showStatus, stopStatus } from './status.js';
// The status page is what most visitors load: the chart library and the
// other views come in separate chunks, loaded when first shown.
const views = {
  service: () => import('./service.js'),
  explore: () => import('./explore.js'),
  incidents: () => import('./incidents.js'),
};

const main = document.getElementById('main');

async function route() {
  stopStatus();
  hideTip();
  const { parts, params } = parseHash();
  const page = parts[0] || '';
  document.querySelectorAll('header nav a').forEach((a) => {
    const target = a.getAttribute('href').replace(/^#\/?/, '');
    if (target === page || (page === 'incident' && target === 'incidents')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  });
  if (page === 'service') await (await views.service()).showService(main, params);
  else if (page === 'explore') (await views.explore()).showExplore(main, params);
  else if (page === 'incidents') await (await views.incidents()).showIncidents(main, params);
  else if (page === 'incident') await (await views.incidents()).showIncident(main, parts[1] || '');
  else await showStatus(main);
}

function keyButton() {
  const b = document.getElementById('keybtn');
  const label = () => { b.textContent = getKey() ? 'API key ✔' : 'API key'; };
  label();
  b.addEventListener('click', () => {
    const k = prompt('API key for this server (stored in this browser; empty to forget it)', getKey());
    if (k === null) return;
    setKey(k.trim());
    label();
    route();
  });
}

let lastHash = location.hash;
window.addEventListener('hashchange', () => {
  // the pages rewrite their own parameters with replaceState; only a real
  // navigation (link, back button) lands here
  if (location.hash !== lastHash) {
    lastHash = location.hash;
    route().then(() => main.focus({ preventScroll: true }));
  }
});
installBarEvents(main);
keyButton();
route();
