// The peer: npm oidc-provider 9 configured, through its documented options,
// like the Zapini ID bench configuration (see docs/benchmarks.md). It is
// installed by `npm ci` at run time and never committed.
//
// Environment: PEER_PORT (the provider), PEER_ADMIN_PORT (a loopback-only
// helper that mints authorization codes through the provider's own models,
// as `zapini-id bench seed-codes` does through the store), BENCH_SECRET
// (the clients' secret), BENCH_REDIRECT_URI.
import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.env.PEER_PORT);
const adminPort = Number(process.env.PEER_ADMIN_PORT);
const secret = process.env.BENCH_SECRET;
const redirectUri = process.env.BENCH_REDIRECT_URI;
const issuer = `http://127.0.0.1:${port}`;

function privateJwk(type, options, alg, kid) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid };
}

// The development adapter that ships with the provider keeps at most 1,000
// entries and evicts the oldest, which loses codes and grants under load.
// This one keeps everything in memory until it expires, through the
// provider's documented adapter interface.
const entries = new Map();
const byGrant = new Map();
const nowSeconds = () => Math.floor(Date.now() / 1000);

class MapAdapter {
  constructor(name) {
    this.name = name;
  }

  key(id) {
    return `${this.name}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = expiresIn ? nowSeconds() + expiresIn : Infinity;
    entries.set(key, { payload, expiresAt });
    if (payload.grantId) {
      if (!byGrant.has(payload.grantId)) byGrant.set(payload.grantId, new Set());
      byGrant.get(payload.grantId).add(key);
    }
  }

  async find(id) {
    const entry = entries.get(this.key(id));
    if (!entry) return undefined;
    if (entry.expiresAt <= nowSeconds()) {
      entries.delete(this.key(id));
      return undefined;
    }
    return entry.payload;
  }

  async findByUid(uid) {
    return this.find(uid);
  }

  async findByUserCode() {
    return undefined;
  }

  async consume(id) {
    const entry = entries.get(this.key(id));
    if (entry) entry.payload.consumed = nowSeconds();
  }

  async destroy(id) {
    entries.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of byGrant.get(grantId) || []) entries.delete(key);
    byGrant.delete(grantId);
  }
}

// Expired entries go once a minute, as the embedded Zapini ID purges its own.
setInterval(() => {
  const now = nowSeconds();
  for (const [key, entry] of entries) if (entry.expiresAt <= now) entries.delete(key);
}, 60_000).unref();

const client = (id, method) => ({
  client_id: id,
  client_secret: secret,
  token_endpoint_auth_method: method,
  grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
  response_types: ['code'],
  redirect_uris: [redirectUri],
  scope: 'openid offline_access api',
  id_token_signed_response_alg: 'ES256',
});

// One resource server per signing algorithm; client_credentials asks for
// one with the `resource` parameter (RFC 8707) and gets a JWT access token
// (RFC 9068) signed with that algorithm.
const resources = {
  'urn:bench:es256': 'ES256',
  'urn:bench:rs256': 'RS256',
};

const configuration = {
  adapter: MapAdapter,
  clients: [client('bench-basic', 'client_secret_basic'), client('bench-post', 'client_secret_post')],
  jwks: {
    keys: [
      privateJwk('ec', { namedCurve: 'P-256' }, 'ES256', 'es256'),
      privateJwk('rsa', { modulusLength: 2048 }, 'RS256', 'rs256'),
    ],
  },
  scopes: ['openid', 'offline_access', 'api'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, c, oneOf) => oneOf,
      useGrantedResource: () => false,
      getResourceServerInfo: (ctx, resource) => {
        const alg = resources[resource];
        if (!alg) throw new Provider.errors.InvalidTarget();
        return {
          scope: 'api',
          audience: resource,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg } },
        };
      },
    },
  },
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  rotateRefreshToken: () => true,
  pkce: { required: () => false },
  ttl: {
    AccessToken: 600,
    AuthorizationCode: 60,
    ClientCredentials: 600,
    IdToken: 600,
    Grant: 30 * 24 * 3600,
    RefreshToken: 30 * 24 * 3600,
  },
};

const provider = new Provider(issuer, configuration);

// Mints `n` codes for `client` and a fixed account, each with its own grant,
// as the authorization endpoint would after a sign-in.
async function mintCodes(clientId, scope, n) {
  const now = Math.floor(Date.now() / 1000);
  const codes = [];
  for (let i = 0; i < n; i += 1) {
    const grant = new provider.Grant({ accountId: 'bench-user', clientId });
    grant.addOIDCScope(scope);
    const grantId = await grant.save();
    const code = new provider.AuthorizationCode({
      accountId: 'bench-user',
      clientId,
      grantId,
      redirectUri,
      scope,
      authTime: now,
      amr: ['pwd'],
    });
    codes.push(await code.save());
  }
  return codes;
}

const admin = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname !== '/mint-codes') {
    res.writeHead(404).end();
    return;
  }
  const n = Number(url.searchParams.get('n') || '1');
  const scope = url.searchParams.get('scope') || 'openid';
  const clientId = url.searchParams.get('client') || 'bench-basic';
  try {
    const codes = await mintCodes(clientId, scope, n);
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`${codes.join('\n')}\n`);
  } catch (err) {
    res.writeHead(500).end(String(err));
  }
});

provider.listen(port, '127.0.0.1');
admin.listen(adminPort, '127.0.0.1');
