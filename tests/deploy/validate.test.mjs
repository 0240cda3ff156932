// Offline validation of every deploy artefact (issue 5): docker-compose.yml, the
// kustomize overlays and their objects, YAML style, the Dockerfile, the nginx and haproxy
// configurations. Each check runs on the artefact as committed and on a deliberately
// broken copy, which it must reject: a checker that accepts anything fails here.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yaml from 'js-yaml';
import {
    REPO, checkCompose, checkConsistency, checkDockerfile, checkHaproxy, checkNginx,
    checkRotorConfig, checkSchemas, checkUnknownFields, checkYamllint, kustomize, podConfig, run,
} from './lib/checks.mjs';

const ROTOR_BIN = process.env.ROTOR_BIN ?? path.join(REPO, 'build/rotor');
const K8S = path.join(REPO, 'deploy/k8s');
const COMPOSE = path.join(REPO, 'docker-compose.yml');
const DOCKERFILE = path.join(REPO, 'deploy/Dockerfile');
const NGINX = path.join(REPO, 'deploy/nginx/nginx.conf');
const HAPROXY = path.join(REPO, 'deploy/haproxy/haproxy.cfg');

let tmp;
before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rotor-deploy-'));
});
after(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
});

function noProblems(problems) {
    assert.deepEqual(problems, [], problems.join('\n'));
}

function rejected(problems, pattern) {
    assert.ok(problems.length > 0, 'the broken copy was accepted');
    if (pattern)
        assert.match(problems.join('\n'), pattern);
}

// A copy of `text` with `from` replaced by `to`; `from` must be there, so a change to the
// artefact that removes it fails here instead of silently testing an unbroken copy.
function broken(text, from, to) {
    assert.ok(text.includes(from), `the artefact no longer contains ${JSON.stringify(from)}`);
    return text.replace(from, to);
}

// A copy of deploy/k8s with one file changed, for kustomize to build.
let copies = 0;
function brokenK8s(rel, from, to) {
    const dir = path.join(tmp, `k8s-${++copies}`);
    fs.cpSync(K8S, dir, { recursive: true });
    const file = path.join(dir, rel);
    fs.writeFileSync(file, broken(fs.readFileSync(file, 'utf8'), from, to));
    return dir;
}

function yamlFiles(dir) {
    return fs.readdirSync(dir, { recursive: true })
        .filter((f) => /\.ya?ml$/.test(f) && !f.includes('node_modules'))
        .map((f) => path.join(dir, f));
}

describe('docker-compose.yml', () => {
    test('docker-compose config -q accepts it', () => {
        noProblems(checkCompose(COMPOSE));
    });
    test('a copy with an unsupported service option is rejected', () => {
        assert.ok(fs.existsSync(COMPOSE), `${COMPOSE} does not exist`);
        const doc = yaml.load(fs.readFileSync(COMPOSE, 'utf8'));
        const first = Object.keys(doc.services)[0];
        doc.services[first].no_such_option = true;
        const copy = path.join(tmp, 'docker-compose.yml');
        fs.writeFileSync(copy, yaml.dump(doc));
        rejected(checkCompose(copy, REPO), /no_such_option/);
    });
});

// Each build: the overlay, and what it may leave out (a Secret created outside it).
const BUILDS = {
    local: { dir: path.join(K8S, 'overlays/local'), external: [] },
    prod: { dir: path.join(K8S, 'overlays/prod'), external: ['rotor-keys'] },
};

describe('Kubernetes manifests', () => {
    // Debian's kubernetes-client (1.20) embeds kustomize v2, which has no components,
    // `patches` or `labels`: say so rather than fail on every overlay.
    test('kubectl has kustomize v5 or later', () => {
        const r = run('kubectl', ['version', '--client']);
        assert.equal(r.code, 0, r.out);
        const m = /Kustomize Version: v(\d+)\./.exec(r.out);
        assert.ok(m && Number(m[1]) >= 5, `kubectl's kustomize is too old: ${r.out}`);
    });

    // The optional components on top of prod, as a user would add them.
    before(() => {
        const dir = path.join(tmp, 'with-components');
        fs.mkdirSync(dir);
        const rel = (p) => path.relative(dir, path.join(K8S, p));
        fs.writeFileSync(path.join(dir, 'kustomization.yaml'), [
            'apiVersion: kustomize.config.k8s.io/v1beta1',
            'kind: Kustomization',
            'resources:',
            `  - ${rel('overlays/prod')}`,
            'components:',
            `  - ${rel('components/servicemonitor')}`,
            `  - ${rel('components/uni-grpc')}`,
            '',
        ].join('\n'));
        BUILDS['prod+components'] = { dir, external: ['rotor-keys'] };
    });

    for (const name of ['local', 'prod', 'prod+components']) {
        describe(name, () => {
            let objects;
            before(() => {
                const r = kustomize(BUILDS[name].dir);
                noProblems(r.problems);
                objects = r.objects;
            });
            test('every object matches its schema (kubernetes-models)', async () => {
                noProblems(await checkSchemas(objects));
            });
            test('no object has an unknown field (@kubernetes/client-node types)', () => {
                noProblems(checkUnknownFields(objects));
            });
            test('selectors, references, probes, security and shutdown timing agree', () => {
                noProblems(checkConsistency(objects, { external: BUILDS[name].external }));
            });
            test('rotor checkconfig accepts the pod configuration without a warning', () => {
                noProblems(checkRotorConfig(objects, ROTOR_BIN, tmp));
            });
        });
    }

    test('local runs rotor on the Redis it brings; prod on several external shards', () => {
        const local = kustomize(BUILDS.local.dir).objects;
        const redisSvc = local.find((o) => o.kind === 'Service' && o.metadata.name === 'rotor-redis');
        assert.ok(redisSvc, 'local has no Service rotor-redis');
        assert.ok(local.some((o) => o.kind === 'Deployment' && o.metadata.name === 'rotor-redis'));
        const rotor = (objs) => objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'rotor');
        const cfg = (objs) => {
            const { configText, env } = podConfig(objs, rotor(objs));
            const c = JSON.parse(configText);
            return { type: c.engine.type, address: env.ROTOR_ENGINE_REDIS_ADDRESS ?? c.engine.redis.address };
        };
        assert.deepEqual(cfg(local), { type: 'redis', address: 'redis://rotor-redis:6379' });
        const prod = kustomize(BUILDS.prod.dir).objects;
        assert.ok(!prod.some((o) => o.metadata.name === 'rotor-redis'), 'prod brings a Redis');
        const p = cfg(prod);
        assert.equal(p.type, 'redis');
        assert.ok(p.address.split(/\s+/).length >= 2, `prod Redis: ${p.address}`);
        const hpa = (objs) => objs.find((o) => o.kind === 'HorizontalPodAutoscaler').spec.minReplicas;
        assert.ok(hpa(prod) > hpa(local), 'prod does not run more replicas than local');
    });

    describe('broken copies are rejected', () => {
        test('kustomize: a resource that does not exist', () => {
            const dir = brokenK8s('base/kustomization.yaml', '  - pdb.yaml\n', '  - pdb.yaml\n  - missing.yaml\n');
            rejected(kustomize(path.join(dir, 'overlays/local')).problems, /missing\.yaml/);
        });
        test('schema: a string where a number belongs', async () => {
            const dir = brokenK8s('base/deployment.yaml', 'maxSkew: 1', 'maxSkew: one');
            const r = kustomize(path.join(dir, 'overlays/prod'));
            noProblems(r.problems);
            rejected(await checkSchemas(r.objects), /maxSkew must be integer/);
        });
        test('schema: a required field missing', async () => {
            const dir = brokenK8s('base/service.yaml', '      port: 8000\n', '');
            const r = kustomize(path.join(dir, 'overlays/local'));
            noProblems(r.problems);
            rejected(await checkSchemas(r.objects), /required property 'port'|required property port/);
        });
        test('unknown field: a misspelt probe', () => {
            const dir = brokenK8s('base/deployment.yaml', 'readinessProbe:', 'readinesProbe:');
            const r = kustomize(path.join(dir, 'overlays/local'));
            noProblems(r.problems);
            rejected(checkUnknownFields(r.objects), /readinesProbe: unknown field/);
        });
        test('consistency: a grace period shorter than preStop + shutdown.timeout', () => {
            const dir = brokenK8s('base/deployment.yaml', 'terminationGracePeriodSeconds: 40',
                'terminationGracePeriodSeconds: 30');
            const r = kustomize(path.join(dir, 'overlays/prod'));
            noProblems(r.problems);
            rejected(checkConsistency(r.objects, BUILDS.prod), /terminationGracePeriodSeconds 30/);
        });
        test('consistency: a Service that selects no pod', () => {
            const dir = brokenK8s('base/service.yaml', 'app.kubernetes.io/instance: rotor\n  ports',
                'app.kubernetes.io/instance: other\n  ports');
            const r = kustomize(path.join(dir, 'overlays/local'));
            noProblems(r.problems);
            rejected(checkConsistency(r.objects, BUILDS.local), /Service\/rotor/);
        });
        test('consistency: prod must not carry the placeholder Secret', () => {
            const dir = brokenK8s('overlays/prod/kustomization.yaml', '$patch: delete', '$patch: merge');
            const r = kustomize(path.join(dir, 'overlays/prod'));
            noProblems(r.problems);
            rejected(checkConsistency(r.objects, BUILDS.prod), /rotor-keys must stay out/);
        });
        test('rotor checkconfig: an invalid duration', () => {
            const dir = brokenK8s('base/config.json', '"drain_delay": "5s"', '"drain_delay": "soon"');
            const r = kustomize(path.join(dir, 'overlays/local'));
            noProblems(r.problems);
            rejected(checkRotorConfig(r.objects, ROTOR_BIN, tmp), /drain_delay/);
        });
        test('rotor checkconfig: a misspelt environment variable', () => {
            const dir = brokenK8s('overlays/local/rotor.yaml', 'ROTOR_CLIENT_ALLOWED_ORIGINS',
                'ROTOR_CLIENT_ALLOWED_ORIGIN');
            const r = kustomize(path.join(dir, 'overlays/local'));
            noProblems(r.problems);
            rejected(checkRotorConfig(r.objects, ROTOR_BIN, tmp), /ROTOR_CLIENT_ALLOWED_ORIGIN/);
        });
    });
});

describe('yamllint', () => {
    const files = () => [path.join(REPO, '.yamllint'), COMPOSE, ...yamlFiles(path.join(REPO, 'deploy'))];
    test('every YAML file passes yamllint --strict with the repository .yamllint', () => {
        noProblems(checkYamllint(files()));
    });
    test('a copy with a duplicate key and trailing spaces is rejected', () => {
        const copy = path.join(tmp, 'deployment.yaml');
        const text = fs.readFileSync(path.join(K8S, 'base/deployment.yaml'), 'utf8');
        fs.writeFileSync(copy, broken(text, 'kind: Deployment\n', 'kind: Deployment  \nkind: Deployment\n'));
        rejected(checkYamllint([copy]), /key-duplicates|trailing-spaces/);
    });
});

describe('deploy/Dockerfile', () => {
    test('passes the linter and the image rules', () => {
        noProblems(checkDockerfile(DOCKERFILE));
    });
    test('a copy with an unknown instruction is rejected', () => {
        const copy = path.join(tmp, 'Dockerfile.syntax');
        fs.writeFileSync(copy, broken(fs.readFileSync(DOCKERFILE, 'utf8'), '\nEXPOSE ', '\nEXPOZE '));
        rejected(checkDockerfile(copy), /Unknown instruction: EXPOZE/);
    });
    test('a copy that runs as root is rejected', () => {
        const copy = path.join(tmp, 'Dockerfile.root');
        const text = fs.readFileSync(DOCKERFILE, 'utf8').replace(/^USER .*$/gm, '');
        fs.writeFileSync(copy, text);
        rejected(checkDockerfile(copy), /runs as root/);
    });
});

// A line after the first line that opens a block/section, so the copy is broken whatever
// else the file contains.
function withBogusLine(text, opener, line) {
    const m = opener.exec(text);
    assert.ok(m, `no ${opener} in the file`);
    const at = m.index + m[0].length;
    return `${text.slice(0, at)}\n${line}${text.slice(at)}`;
}

describe('deploy/nginx/nginx.conf', () => {
    test('nginx -t accepts it without a warning (upstream names replaced by 127.0.0.1: no DNS offline)', () => {
        noProblems(checkNginx(NGINX, tmp));
    });
    test('a copy with an unknown directive is rejected', () => {
        assert.ok(fs.existsSync(NGINX), `${NGINX} does not exist`);
        const copy = path.join(tmp, 'nginx.conf');
        const text = fs.readFileSync(NGINX, 'utf8');
        fs.writeFileSync(copy, withBogusLine(text, /^http\s*\{.*$/m, '    proxy_bufering off;'));
        rejected(checkNginx(copy, tmp), /proxy_bufering/);
    });
});

describe('deploy/haproxy/haproxy.cfg', () => {
    test('haproxy -c accepts it without a warning (but for names that do not resolve here)', () => {
        noProblems(checkHaproxy(HAPROXY, tmp));
    });
    test('a copy with an unknown keyword is rejected', () => {
        assert.ok(fs.existsSync(HAPROXY), `${HAPROXY} does not exist`);
        const copy = path.join(tmp, 'haproxy.cfg');
        const text = fs.readFileSync(HAPROXY, 'utf8');
        fs.writeFileSync(copy, withBogusLine(text, /^(defaults|frontend|backend|listen)\b.*$/m,
            '    no-such-keyword on'));
        rejected(checkHaproxy(copy, tmp), /no-such-keyword/);
    });
});
