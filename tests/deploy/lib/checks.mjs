// Offline checkers for the deploy artefacts. Each returns a list of problems (strings):
// empty means the artefact passed. validate.test.mjs runs every checker on the real files
// and on a deliberately broken copy, which must produce at least one problem.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import dockerfileUtils from 'dockerfile-utils';
import dockerfileAst from 'dockerfile-ast';
import yaml from 'js-yaml';

const { DockerfileParser } = dockerfileAst;

export const REPO = path.resolve(import.meta.dirname, '../../..');

// Runs a command without a shell, bounded in time; never throws for a non-zero exit.
export function run(cmd, args, opts = {}) {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, ...opts });
    if (r.error)
        return { code: -1, out: `${cmd}: ${r.error.message}` };
    return { code: r.status ?? -1, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

// As run(), with stdout going to a regular file: node's pipes are sockets, and a program
// that opens /dev/stdout itself (nginx's `access_log /dev/stdout`) cannot open a socket.
function runToFile(cmd, args, dir) {
    const file = path.join(dir, 'stdout');
    const fd = fs.openSync(file, 'w');
    let r;
    try {
        r = run(cmd, args, { stdio: ['ignore', fd, 'pipe'] });
    } finally {
        fs.closeSync(fd);
    }
    return { code: r.code, out: `${fs.readFileSync(file, 'utf8')}${r.out}`.trim() };
}

function failed(what, r) {
    return r.code === 0 ? [] : [`${what} exited ${r.code}: ${r.out}`];
}

/* ---- docker-compose ------------------------------------------------------------------ */

// `docker-compose config -q` parses, interpolates and validates the file against the
// compose schema. projectDir keeps relative build contexts resolving for a copy.
export function checkCompose(file, projectDir = REPO) {
    if (!fs.existsSync(file))
        return [`${file} does not exist`];
    const r = run('docker-compose', ['-f', file, '--project-directory', projectDir, 'config', '-q']);
    return failed('docker-compose config -q', r);
}

/* ---- kustomize ----------------------------------------------------------------------- */

// `kubectl kustomize dir`: the rendered objects, or the problems.
export function kustomize(dir) {
    const r = run('kubectl', ['kustomize', dir]);
    if (r.code !== 0)
        return { problems: [`kubectl kustomize ${dir} exited ${r.code}: ${r.out}`], objects: [] };
    // Plain YAML, not client-node's loadAllYaml: that one maps objects onto its model
    // classes, which drops unknown fields and renames some keys.
    const objects = yaml.loadAll(r.out).filter(Boolean);
    if (objects.length === 0)
        return { problems: [`kubectl kustomize ${dir} rendered nothing`], objects };
    return { problems: [], objects };
}

/* ---- schema validation (kubernetes-models) ------------------------------------------- */

// kubernetes-models, then the Prometheus Operator's models, by apiVersion: the module that
// exports the kind.
const MODEL_PACKAGES = ['kubernetes-models', '@kubernetes-models/prometheus-operator'];

async function modelFor(apiVersion, kind) {
    for (const pkg of MODEL_PACKAGES) {
        try {
            const mod = await import(`${pkg}/${apiVersion}`);
            if (mod[kind])
                return mod[kind];
        } catch (e) {
            if (e.code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED' && e.code !== 'ERR_MODULE_NOT_FOUND')
                throw e; // anything but "this package has no such group/version"
        }
    }
    return null;
}

function objName(o) {
    return `${o?.kind}/${o?.metadata?.name}`;
}

export async function checkSchemas(objects) {
    const problems = [];
    for (const o of objects) {
        const Model = await modelFor(o.apiVersion, o.kind);
        if (!Model) {
            problems.push(`${objName(o)}: no schema for ${o.apiVersion} ${o.kind}`);
            continue;
        }
        try {
            new Model(o).validate();
        } catch (e) {
            problems.push(`${objName(o)}: ${e.message}`);
        }
    }
    return problems;
}

/* ---- unknown fields (@kubernetes/client-node's type maps) ---------------------------- */

// Kinds that are custom resources: client-node has no type map for them, so they get the
// schema check only.
const CUSTOM_GROUPS = new Set(['monitoring.coreos.com']);

const NULLABLE = / \| (null|undefined)$/;

// Walks value as the generated client type `type`, reporting every key the type does not
// declare: what `kubectl apply --validate=strict` rejects, and what kubernetes-models'
// schemas let through (they allow additional properties).
function unknownFields(value, type, where, problems) {
    type = type.replace(NULLABLE, '');
    if (value === null || typeof value !== 'object')
        return;
    if (type.startsWith('Array<')) {
        if (Array.isArray(value))
            value.forEach((v, i) => unknownFields(v, type.slice(6, -1), `${where}[${i}]`, problems));
        return;
    }
    if (type.startsWith('{ [key: string]: ')) {
        const sub = type.slice('{ [key: string]: '.length, -'; }'.length);
        for (const [k, v] of Object.entries(value))
            unknownFields(v, sub, `${where}.${k}`, problems);
        return;
    }
    const cls = k8s[type];
    if (typeof cls?.getAttributeTypeMap !== 'function' || Array.isArray(value))
        return; // a primitive, IntOrString, Quantity or free-form object
    const fields = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
    for (const [k, v] of Object.entries(value)) {
        if (!fields.has(k))
            problems.push(`${where}.${k}: unknown field (${type})`);
        else
            unknownFields(v, fields.get(k), `${where}.${k}`, problems);
    }
}

function clientType(apiVersion, kind) {
    const version = apiVersion.split('/').pop();
    return `${version[0].toUpperCase()}${version.slice(1)}${kind}`;
}

export function checkUnknownFields(objects) {
    const problems = [];
    for (const o of objects) {
        const group = o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : '';
        if (CUSTOM_GROUPS.has(group))
            continue;
        const type = clientType(o.apiVersion, o.kind);
        if (typeof k8s[type]?.getAttributeTypeMap !== 'function') {
            problems.push(`${objName(o)}: no client type ${type}`);
            continue;
        }
        unknownFields(o, type, objName(o), problems);
    }
    return problems;
}

/* ---- consistency of the rendered objects --------------------------------------------- */

const STANDARD_LABELS = [
    'app.kubernetes.io/name',
    'app.kubernetes.io/instance',
    'app.kubernetes.io/part-of',
    'app.kubernetes.io/managed-by',
];

// "30s", "100ms", "2m", "1h", "0s" (the subset of Go durations rotor's configs use), in
// seconds; NaN for anything else.
export function seconds(d) {
    if (typeof d === 'number')
        return d;
    const units = { ms: 0.001, s: 1, m: 60, h: 3600 };
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(String(d));
    return m ? Number(m[1]) * units[m[2]] : NaN;
}

function selects(selector, labels) {
    const want = Object.entries(selector ?? {});
    return want.length > 0 && want.every(([k, v]) => labels?.[k] === v);
}

function find(objects, kind, name) {
    return objects.find((o) => o.kind === kind && (!name || o.metadata?.name === name));
}

// The rotor Deployment's config.json (from the ConfigMap mounted at /etc/rotor) and the
// environment its container gets, as rotor would see them in the pod.
export function podConfig(objects, deployment) {
    const spec = deployment.spec.template.spec;
    const c = spec.containers.find((x) => x.name === 'rotor');
    const vol = spec.volumes?.find((v) => v.configMap && c.volumeMounts?.some(
        (m) => m.name === v.name && m.mountPath === '/etc/rotor'));
    const cm = vol && find(objects, 'ConfigMap', vol.configMap.name);
    const secretData = (name) => {
        const s = find(objects, 'Secret', name);
        if (!s)
            return null;
        const data = Object.fromEntries(Object.entries(s.data ?? {}).map(
            ([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
        return { ...data, ...(s.stringData ?? {}) };
    };
    const env = {};
    for (const from of c.envFrom ?? []) {
        if (from.secretRef)
            Object.assign(env, secretData(from.secretRef.name) ?? {});
        if (from.configMapRef)
            Object.assign(env, find(objects, 'ConfigMap', from.configMapRef.name)?.data ?? {});
    }
    for (const e of c.env ?? []) {
        if (e.value !== undefined)
            env[e.name] = e.value;
        else if (e.valueFrom?.resourceFieldRef)
            env[e.name] = '1';
        else if (e.valueFrom?.fieldRef)
            env[e.name] = 'rotor-pod';
        else if (e.valueFrom?.secretKeyRef)
            env[e.name] = secretData(e.valueFrom.secretKeyRef.name)?.[e.valueFrom.secretKeyRef.key];
    }
    return { container: c, configText: cm?.data?.['config.json'], env };
}

function checkSecurity(d, problems) {
    const spec = d.spec.template.spec;
    for (const c of spec.containers) {
        const where = `${objName(d)} container ${c.name}`;
        const sc = c.securityContext ?? {};
        if (!(sc.runAsNonRoot ?? spec.securityContext?.runAsNonRoot))
            problems.push(`${where}: runAsNonRoot is not set`);
        if (sc.readOnlyRootFilesystem !== true)
            problems.push(`${where}: readOnlyRootFilesystem is not true`);
        if (sc.allowPrivilegeEscalation !== false)
            problems.push(`${where}: allowPrivilegeEscalation is not false`);
        if (!sc.capabilities?.drop?.includes('ALL'))
            problems.push(`${where}: capabilities do not drop ALL`);
        const r = c.resources ?? {};
        if (!r.requests?.cpu || !r.requests?.memory || !r.limits?.memory)
            problems.push(`${where}: needs cpu and memory requests and a memory limit`);
    }
}

function checkProbes(c, where, problems) {
    const ports = new Set((c.ports ?? []).flatMap((p) => [p.name, p.containerPort]));
    const probes = { readinessProbe: '/ready', livenessProbe: '/health', startupProbe: '/health' };
    for (const [probe, want] of Object.entries(probes)) {
        const g = c[probe]?.httpGet;
        if (!g)
            problems.push(`${where}: ${probe} is not an HTTP GET`);
        else if (g.path !== want || !ports.has(g.port))
            problems.push(`${where}: ${probe} is ${g.path} on ${g.port}, want ${want} on a container port`);
    }
}

function preStopSeconds(c) {
    const h = c.lifecycle?.preStop;
    if (h?.sleep)
        return h.sleep.seconds;
    const cmd = h?.exec?.command ?? [];
    return cmd[0] === 'sleep' && cmd.length === 2 ? seconds(`${cmd[1]}s`) : NaN;
}

// Shutdown timing: the kubelet waits terminationGracePeriodSeconds for preStop plus the
// whole drain; the drain (delay, spread disconnects, closing handshakes) fits inside
// shutdown.timeout; an LB probing /ready sees 503 before the listener closes.
function checkShutdownTiming(d, cfg, env, c, problems) {
    const where = objName(d);
    const sh = cfg.shutdown ?? {};
    const timeout = seconds(env.ROTOR_SHUTDOWN_TIMEOUT ?? sh.timeout ?? '30s');
    const delay = seconds(env.ROTOR_SHUTDOWN_DRAIN_DELAY ?? sh.drain_delay ?? '0s');
    const window = seconds(env.ROTOR_SHUTDOWN_DISCONNECT_WINDOW ?? sh.disconnect_window ?? '1s');
    const grace = d.spec.template.spec.terminationGracePeriodSeconds ?? 30;
    const preStop = preStopSeconds(c);
    if (!(preStop > 0))
        problems.push(`${where}: preStop must be a sleep`);
    if (!(grace >= preStop + timeout + 1))
        problems.push(`${where}: terminationGracePeriodSeconds ${grace} < preStop ${preStop} + shutdown.timeout ${timeout} + 1`);
    const closeHandshake = 5;
    if (!(timeout >= delay + window + closeHandshake))
        problems.push(`${where}: shutdown.timeout ${timeout} < drain_delay ${delay} + disconnect_window ${window} + ${closeHandshake}`);
    const rp = c.readinessProbe ?? {};
    const notice = (rp.periodSeconds ?? 10) * (rp.failureThreshold ?? 3);
    if (!(notice <= preStop + delay))
        problems.push(`${where}: readiness notices a drain after ${notice}s, later than preStop + drain_delay ${preStop + delay}s`);
}

function checkReferences(objects, d, external, problems) {
    const spec = d.spec.template.spec;
    const refs = [
        ...(spec.volumes ?? []).filter((v) => v.configMap).map((v) => ['ConfigMap', v.configMap.name]),
        ...(spec.volumes ?? []).filter((v) => v.secret).map((v) => ['Secret', v.secret.secretName]),
    ];
    for (const c of spec.containers) {
        for (const f of c.envFrom ?? []) {
            if (f.secretRef)
                refs.push(['Secret', f.secretRef.name]);
            if (f.configMapRef)
                refs.push(['ConfigMap', f.configMapRef.name]);
        }
    }
    for (const [kind, name] of refs) {
        const present = !!find(objects, kind, name);
        if (external.includes(name) && present)
            problems.push(`${objName(d)}: ${kind}/${name} must stay out of this build (created outside it)`);
        else if (!external.includes(name) && !present)
            problems.push(`${objName(d)}: ${kind}/${name} is not in the build`);
    }
}

// opts.external: Secret names the overlay expects to exist in the cluster already.
export function checkConsistency(objects, opts = {}) {
    const external = opts.external ?? [];
    const problems = [];
    for (const o of objects) {
        const missing = STANDARD_LABELS.filter((l) => !o.metadata?.labels?.[l]);
        if (missing.length)
            problems.push(`${objName(o)}: missing labels ${missing.join(', ')}`);
    }
    const d = find(objects, 'Deployment', 'rotor');
    if (!d)
        return [...problems, 'no Deployment rotor'];
    const podLabels = d.spec.template.metadata.labels;
    const c = d.spec.template.spec.containers.find((x) => x.name === 'rotor');
    if (!c)
        return [...problems, `${objName(d)}: no container rotor`];
    for (const dep of objects.filter((o) => o.kind === 'Deployment')) {
        if (!selects(dep.spec.selector.matchLabels, dep.spec.template.metadata.labels))
            problems.push(`${objName(dep)}: selector does not match its pod labels`);
        checkSecurity(dep, problems);
    }
    if (!selects(d.spec.selector.matchLabels, podLabels))
        problems.push(`${objName(d)}: selector does not match the pod labels`);
    for (const t of d.spec.template.spec.topologySpreadConstraints ?? []) {
        if (!selects(t.labelSelector?.matchLabels, podLabels))
            problems.push(`${objName(d)}: topology spread on ${t.topologyKey} selects no rotor pod`);
    }
    checkProbes(c, objName(d), problems);
    const svc = find(objects, 'Service', 'rotor');
    if (!svc || !selects(svc.spec.selector, podLabels))
        problems.push('Service/rotor: missing or selects no rotor pod');
    const portNames = new Set((c.ports ?? []).flatMap((p) => [p.name, p.containerPort]));
    for (const p of svc?.spec.ports ?? []) {
        if (!portNames.has(p.targetPort ?? p.port))
            problems.push(`Service/rotor: port ${p.name} targets ${p.targetPort}, not a container port`);
    }
    if (!svc?.spec.ports?.some((p) => p.port === 8000))
        problems.push('Service/rotor: no port 8000');
    const pdb = find(objects, 'PodDisruptionBudget');
    if (!pdb || !selects(pdb.spec.selector.matchLabels, podLabels))
        problems.push('PodDisruptionBudget: missing or selects no rotor pod');
    const hpa = find(objects, 'HorizontalPodAutoscaler');
    const target = hpa?.spec.scaleTargetRef;
    if (!hpa || target.kind !== 'Deployment' || target.name !== d.metadata.name)
        problems.push('HorizontalPodAutoscaler: missing or does not scale Deployment rotor');
    else if (!(hpa.spec.minReplicas >= 2 && hpa.spec.minReplicas <= hpa.spec.maxReplicas))
        problems.push(`${objName(hpa)}: want 2 <= minReplicas <= maxReplicas`);
    if (hpa && d.spec.replicas !== undefined)
        problems.push(`${objName(d)}: has replicas while the HPA owns the count`);
    for (const sm of objects.filter((o) => o.kind === 'ServiceMonitor')) {
        if (!svc || !selects(sm.spec.selector.matchLabels, svc.metadata.labels))
            problems.push(`${objName(sm)}: selects no rotor Service`);
        for (const e of sm.spec.endpoints ?? []) {
            if (!svc?.spec.ports?.some((p) => p.name === e.port))
                problems.push(`${objName(sm)}: endpoint port ${e.port} is not a Service port`);
        }
    }
    checkReferences(objects, d, external, problems);
    const { configText, env } = podConfig(objects, d);
    let cfg = null;
    try {
        cfg = JSON.parse(configText);
    } catch (e) {
        problems.push(`${objName(d)}: no config.json mounted at /etc/rotor (${e.message})`);
    }
    if (cfg)
        checkShutdownTiming(d, cfg, env, c, problems);
    return problems;
}

/* ---- rotor itself reads the configuration ---------------------------------------------- */

// `rotor checkconfig` on the pod's config.json with the pod's environment (Secret keys,
// env entries): it must be valid without a single warning (an unknown or misspelled key,
// ROTOR_* variable or value would warn).
export function checkRotorConfig(objects, rotorBin, tmpDir) {
    const d = find(objects, 'Deployment', 'rotor');
    if (!d)
        return ['no Deployment rotor'];
    const { configText, env } = podConfig(objects, d);
    if (configText === undefined)
        return [`${objName(d)}: no config.json`];
    const file = path.join(tmpDir, `config-${process.pid}-${Date.now()}.json`);
    fs.writeFileSync(file, configText);
    const r = run(rotorBin, ['checkconfig', '-c', file], {
        env: { PATH: process.env.PATH, ...env },
    });
    fs.rmSync(file, { force: true });
    if (r.code !== 0)
        return [`rotor checkconfig exited ${r.code}: ${r.out}`];
    if (/\bwarn\b/i.test(r.out) || !/: valid$/m.test(r.out))
        return [`rotor checkconfig: ${r.out}`];
    return [];
}

/* ---- yamllint ------------------------------------------------------------------------ */

export function checkYamllint(files, config = path.join(REPO, '.yamllint')) {
    const missing = files.filter((f) => !fs.existsSync(f));
    if (missing.length)
        return missing.map((f) => `${f} does not exist`);
    return failed('yamllint', run('yamllint', ['--strict', '-f', 'parsable', '-c', config, ...files]));
}

/* ---- Dockerfile ---------------------------------------------------------------------- */

const ERROR = 2;
const STRICT = {
    deprecatedMaintainer: ERROR,
    directiveCasing: ERROR,
    emptyContinuationLine: ERROR,
    instructionCasing: ERROR,
    instructionCmdMultiple: ERROR,
    instructionEntrypointMultiple: ERROR,
    instructionHealthcheckMultiple: ERROR,
    instructionJSONInSingleQuotes: ERROR,
    instructionWorkdirRelative: ERROR,
};

// dockerfile-utils' validator (the Docker language server's: syntax, arguments of every
// instruction, flags) with every rule an error, then the practices the image must follow
// (hadolint-like rules: DL3002, DL3006/7, DL3009, DL3015, DL3020, DL3025, DL4006 aside).
export function checkDockerfile(file) {
    if (!fs.existsSync(file))
        return [`${file} does not exist`];
    const text = fs.readFileSync(file, 'utf8');
    const problems = dockerfileUtils.validate(text, STRICT).map(
        (d) => `${path.basename(file)}:${d.range.start.line + 1}: ${d.message}`);
    const df = DockerfileParser.parse(text);
    const ins = df.getInstructions();
    const at = (i) => `${path.basename(file)}:${i.getRange().start.line + 1}`;
    const froms = df.getFROMs();
    if (froms.length < 2)
        problems.push('Dockerfile: not a multi-stage build');
    const argDefaults = Object.fromEntries(df.getInitialARGs()
        .map((a) => a.getProperty()).filter(Boolean).map((p) => [p.getName(), p.getValue()]));
    for (const f of froms) {
        const image = (f.getImage() ?? '').replace(/^\$\{?(\w+)\}?$/, (_, a) => argDefaults[a] ?? '');
        const stage = froms.some((g) => g.getBuildStage() === image);
        if (!stage && (!image.includes(':') || image.endsWith(':latest')))
            problems.push(`${at(f)}: base image ${image || '?'} has no fixed tag`);
    }
    const last = froms[froms.length - 1];
    const finalStage = ins.filter((i) => i.getRange().start.line >= last.getRange().start.line);
    const users = finalStage.filter((i) => i.getKeyword() === 'USER');
    const user = users.length ? users[users.length - 1].getArgumentsContent() : 'root';
    if (/^(root|0)(:|$)/.test(user))
        problems.push('Dockerfile: the final stage runs as root');
    if (!finalStage.some((i) => i.getKeyword() === 'HEALTHCHECK'))
        problems.push('Dockerfile: the final stage has no HEALTHCHECK');
    if (!finalStage.some((i) => i.getKeyword() === 'EXPOSE' && /\b8000\b/.test(i.getArgumentsContent())))
        problems.push('Dockerfile: the final stage does not EXPOSE 8000');
    for (const i of ins) {
        const args = i.getArgumentsContent() ?? '';
        const kw = i.getKeyword();
        if (kw === 'RUN' && /\bapt-get\s+install\b/.test(args)) {
            if (!/--no-install-recommends/.test(args) || !/\s-y\b|--yes/.test(args))
                problems.push(`${at(i)}: apt-get install without -y --no-install-recommends`);
            if (!/rm -rf \/var\/lib\/apt\/lists/.test(args))
                problems.push(`${at(i)}: apt lists are not removed in the same RUN`);
        }
        if (kw === 'RUN' && /(^|[;&|]\s*)sudo\b/.test(args))
            problems.push(`${at(i)}: sudo in RUN`);
        if (kw === 'ADD' && !/https?:\/\//.test(args))
            problems.push(`${at(i)}: ADD of local files (use COPY)`);
        if ((kw === 'ENTRYPOINT' || kw === 'CMD') && !args.trim().startsWith('['))
            problems.push(`${at(i)}: ${kw} in shell form (signals would go to a shell)`);
    }
    return problems;
}

/* ---- nginx and haproxy --------------------------------------------------------------- */

// A zero exit with warnings is still a problem, but for the ones listed as expected.
function checked(what, r, expectedWarning) {
    if (r.code !== 0)
        return [`${what} exited ${r.code}: ${r.out}`];
    return r.out.split('\n')
        .filter((l) => /\[(warn|WARNING)\]/.test(l) && !(expectedWarning && expectedWarning.test(l)))
        .map((l) => `${what}: ${l}`);
}

// nginx resolves upstream host names while checking, and the compose service names do
// not resolve outside compose: the copy that is checked has them replaced by 127.0.0.1
// and its /tmp paths moved into the test's directory. Everything else is the file as
// written.
export function checkNginx(file, tmpDir) {
    if (!fs.existsSync(file))
        return [`${file} does not exist`];
    const dir = fs.mkdtempSync(path.join(tmpDir, 'nginx-'));
    const conf = path.join(dir, 'nginx.conf');
    const text = fs.readFileSync(file, 'utf8')
        .replace(/^(\s*server\s+)([A-Za-z][A-Za-z0-9.-]*)(:\d+)/gm, '$1127.0.0.1$3')
        .replaceAll('/tmp/', `${dir}/`);
    fs.writeFileSync(conf, text);
    return checked('nginx -t', runToFile('nginx', ['-t', '-e', 'stderr', '-p', `${dir}/`, '-c', conf], dir));
}

// haproxy checks the file as written (its servers have `init-addr ...,none`, so names
// that do not resolve here only disable them, with a warning that is expected); /tmp
// paths are moved into the test's directory.
export function checkHaproxy(file, tmpDir) {
    if (!fs.existsSync(file))
        return [`${file} does not exist`];
    const dir = fs.mkdtempSync(path.join(tmpDir, 'haproxy-'));
    const conf = path.join(dir, 'haproxy.cfg');
    fs.writeFileSync(conf, fs.readFileSync(file, 'utf8').replaceAll('/tmp/', `${dir}/`));
    return checked('haproxy -c', runToFile('haproxy', ['-c', '-f', conf], dir),
        /could not resolve address '[^']+', disabling server/);
}
