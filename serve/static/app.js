// The page of "seqconv serve": send an image to POST /v1/predict and draw the most probable classes as
// bars. Errors are shown on the page (never thrown), so that the console stays quiet.
'use strict';

const $ = (id) => document.getElementById(id);
const drop = $('drop'), input = $('file'), answer = $('answer'), preview = $('preview');
const statusLine = $('status'), results = $('results'), timings = $('timings');
let previewURL = null;

function setState(state, message) {
  document.body.dataset.state = state;
  statusLine.textContent = message;
}

async function describeModel() {
  try {
    const r = await fetch('/v1/model');
    const m = await r.json();
    if (!r.ok) throw new Error(m.error || r.statusText);
    $('model').textContent = `${m.model}: ${m.classes.length} classes, ${m.params.toLocaleString('en')} ` +
      `parameters, images prepared at ${m.input_size[0]}x${m.input_size[1]}; engine ${m.engine}`;
  } catch (e) {
    $('model').textContent = `The model could not be described: ${e.message}`;
  }
}

function showBars(top) {
  results.replaceChildren(...top.map((c) => {
    const li = document.createElement('li');
    li.className = 'bar';
    li.dataset.name = c.name;
    li.dataset.probability = String(c.probability);
    const label = document.createElement('span');
    label.className = 'label';
    label.textContent = c.name;
    label.title = `class ${c.index}: ${c.name}`;
    const track = document.createElement('span');
    track.className = 'track';
    const fill = document.createElement('span');
    fill.className = 'fill';
    fill.style.display = 'block';
    fill.style.width = `${(100 * c.probability).toFixed(2)}%`;
    track.append(fill);
    const pct = document.createElement('span');
    pct.className = 'pct';
    pct.textContent = `${(100 * c.probability).toFixed(1)}%`;
    li.append(label, track, pct);
    return li;
  }));
}

async function predict(file) {
  if (!file) return;
  if (previewURL) URL.revokeObjectURL(previewURL);
  previewURL = URL.createObjectURL(file);
  preview.src = previewURL;
  answer.hidden = false;
  results.replaceChildren();
  timings.textContent = '';
  setState('busy', `Predicting ${file.name}…`);
  try {
    const r = await fetch('/v1/predict', {
      method: 'POST',
      headers: { 'Content-Type': file.type || 'application/octet-stream' },
      body: file,
    });
    const body = await r.json();
    if (!r.ok) {
      setState('error', `${file.name}: ${body.error || r.statusText} (HTTP ${r.status})`);
      return;
    }
    const p = body.predictions[0];
    showBars(p.top);
    const t = body.timings_ms;
    timings.textContent = `${t.total.toFixed(1)} ms in all: decoding ${t.decode.toFixed(1)} ms, waiting ` +
      `${t.queue.toFixed(1)} ms, model ${t.inference.toFixed(1)} ms (batch of ${p.batch_size})`;
    setState('done', `${file.name}: most likely ${p.top[0].name}`);
  } catch (e) {
    setState('error', `${file.name}: ${e.message}`);
  }
}

input.addEventListener('change', () => predict(input.files[0]));
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  predict(e.dataTransfer.files[0]);
});
describeModel();
