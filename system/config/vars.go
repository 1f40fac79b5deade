package config

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Var documents one environment variable. Vars is the only place where a
// variable is described: `bridge env` and the README table are printed
// from it.
type Var struct {
	// Name is the environment variable's name.
	Name string
	// Default is the value used when the variable is unset or empty; it is
	// empty when there is none.
	Default string
	// Example is a valid value, shown in documentation and in errors.
	Example string
	// Required lists the modes that refuse to start without the variable.
	Required string
	// Description says what the variable does, in one sentence.
	Description string
	// Secret marks values that must never reach a log or an error.
	Secret bool
}

// Names of the environment variables. They are part of the interface of
// the bridge binary and must be kept.
const (
	EnvDatabaseURL             = "DATABASE_URL"
	EnvDBMaxConns              = "BRIDGE_DB_MAX_CONNS"
	EnvHTTPAddr                = "BRIDGE_HTTP_ADDR"
	EnvNodeID                  = "BRIDGE_NODE_ID"
	EnvLogLevel                = "BRIDGE_LOG_LEVEL"
	EnvLogFormat               = "BRIDGE_LOG_FORMAT"
	EnvShutdownTimeout         = "BRIDGE_SHUTDOWN_TIMEOUT"
	EnvMasterKey               = "BRIDGE_MASTER_KEY"
	EnvMasterKeyID             = "BRIDGE_MASTER_KEY_ID"
	EnvMasterKeysPrevious      = "BRIDGE_MASTER_KEYS_PREVIOUS"
	EnvAdminToken              = "BRIDGE_ADMIN_TOKEN"
	EnvSignupKey               = "BRIDGE_SIGNUP_KEY"
	EnvSignupOpen              = "BRIDGE_SIGNUP_OPEN"
	EnvSignupRate              = "BRIDGE_SIGNUP_RATE"
	EnvRelayccSharedKey        = "BRIDGE_RELAYCC_SHARED_KEY"
	EnvTokenFailureRate        = "BRIDGE_TOKEN_FAILURE_RATE"
	EnvMaxBridgesPerAccount    = "BRIDGE_MAX_BRIDGES_PER_ACCOUNT"
	EnvSendRate                = "BRIDGE_SEND_RATE"
	EnvSendBurst               = "BRIDGE_SEND_BURST"
	EnvAllowPrivateTargets     = "BRIDGE_ALLOW_PRIVATE_TARGETS"
	EnvMaxBodyBytes            = "BRIDGE_MAX_BODY_BYTES"
	EnvXMTPNode                = "BRIDGE_XMTP_NODE"
	EnvXMTPTLS                 = "BRIDGE_XMTP_TLS"
	EnvXMTPCAFile              = "BRIDGE_XMTP_CA_FILE"
	EnvXMTPNodeGRPCAddr        = "BRIDGE_XMTP_NODE_GRPC_ADDR"
	EnvXMTPNodeHTTPAddr        = "BRIDGE_XMTP_NODE_HTTP_ADDR"
	EnvXMTPNodeAuthn           = "BRIDGE_XMTP_NODE_AUTHN"
	EnvXMTPNodeOpsAddr         = "BRIDGE_XMTP_NODE_OPS_ADDR"
	EnvXMTPMaxEnvelopeBytes    = "BRIDGE_XMTP_MAX_ENVELOPE_BYTES"
	EnvXMTPMaxTopicsPerRequest = "BRIDGE_XMTP_MAX_TOPICS_PER_REQUEST"
	EnvXMTPMaxEnvelopesPerPub  = "BRIDGE_XMTP_MAX_ENVELOPES_PER_PUBLISH"
	EnvXMTPSubscriberBuffer    = "BRIDGE_XMTP_SUBSCRIBER_BUFFER_BYTES"
	EnvXMTPMaxSubsPerClient    = "BRIDGE_XMTP_MAX_SUBSCRIPTIONS_PER_CLIENT"
	EnvXMTPMaxSubscriptions    = "BRIDGE_XMTP_MAX_SUBSCRIPTIONS"
	EnvXMTPMaxPublishes        = "BRIDGE_XMTP_MAX_PUBLISHES_IN_FLIGHT"
	EnvXMTPNodeMaxConns        = "BRIDGE_XMTP_NODE_MAX_CONNS"
	EnvCanaryInterval          = "BRIDGE_CANARY_INTERVAL"
	EnvCanarySample            = "BRIDGE_CANARY_SAMPLE"
	EnvCanaryURL               = "BRIDGE_CANARY_URL"
	EnvLeaseTTL                = "BRIDGE_LEASE_TTL"
	EnvReconcileInterval       = "BRIDGE_RECONCILE_INTERVAL"
	EnvSweepInterval           = "BRIDGE_SWEEP_INTERVAL"
	EnvPprofAddr               = "BRIDGE_PPROF_ADDR"
	EnvBreakerOpenAfter        = "BRIDGE_BREAKER_OPEN_AFTER"
	EnvBreakerProbeMin         = "BRIDGE_BREAKER_PROBE_MIN"
	EnvBreakerProbeMax         = "BRIDGE_BREAKER_PROBE_MAX"
	EnvBreakerDisableAfter     = "BRIDGE_BREAKER_DISABLE_AFTER"
	EnvPayloadRetention        = "BRIDGE_PAYLOAD_RETENTION"
	EnvQuarantineRetention     = "BRIDGE_QUARANTINE_RETENTION"
	EnvQuarantineMaxRows       = "BRIDGE_QUARANTINE_MAX_ROWS"
	EnvRetentionInterval       = "BRIDGE_RETENTION_INTERVAL"
	EnvTombstoneFor            = "BRIDGE_TOMBSTONE_FOR"
	EnvTombstoneMessage        = "BRIDGE_TOMBSTONE_MESSAGE"
	EnvReplyLoopLimit          = "BRIDGE_REPLY_LOOP_LIMIT"
	EnvLiveRetention           = "BRIDGE_LIVE_RETENTION"
	EnvLiveWindow              = "BRIDGE_LIVE_WINDOW"
	EnvLiveClaimTTL            = "BRIDGE_LIVE_CLAIM_TTL"
	EnvBroadcastRate           = "BRIDGE_BROADCAST_RATE"
	EnvProxyHeader             = "BRIDGE_PROXY_HEADER"
	EnvTrustedProxies          = "BRIDGE_TRUSTED_PROXIES"
	EnvClusterProvider         = "BRIDGE_CLUSTER_PROVIDER"
	EnvClusterName             = "BRIDGE_CLUSTER_NAME"
	EnvClusterHost             = "BRIDGE_CLUSTER_HOST"
	EnvClusterPort             = "BRIDGE_CLUSTER_PORT"
	EnvClusterAdvertisedHost   = "BRIDGE_CLUSTER_ADVERTISED_HOST"
	EnvClusterProviderPort     = "BRIDGE_CLUSTER_PROVIDER_PORT"
	EnvClusterPeers            = "BRIDGE_CLUSTER_PEERS"
	EnvEtcdEndpoints           = "BRIDGE_ETCD_ENDPOINTS"
	EnvEtcdPrefix              = "BRIDGE_ETCD_PREFIX"
)

// Vars is the table of every environment variable the bridge reads, in the
// order they are documented.
var Vars = []Var{
	{Name: EnvDatabaseURL, Example: "postgres://bridge:secret@127.0.0.1:5432/bridge?sslmode=disable", Required: "node, xmtp-node, migrate",
		Description: "Postgres URL of the bridge's database (dev: defaults to postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable).", Secret: true},
	{Name: EnvDBMaxConns, Default: "8", Example: "32",
		Description: "Most Postgres connections the bridge node holds open; a busy node waits for one when all are in use, and every node counts against the server's max_connections. A pool_max_conns parameter in DATABASE_URL wins over it. The node lease's renewal has one connection more of its own, so a full pool never delays it."},
	{Name: EnvHTTPAddr, Default: "127.0.0.1:8080", Example: "127.0.0.1:8080",
		Description: "Address the REST API, /healthz, /readyz and /metrics listen on."},
	{Name: EnvNodeID, Default: "(host name)", Example: "bridge-1",
		Description: "Name of this node in logs, metrics, identity leases and the cluster."},
	{Name: EnvLogLevel, Default: "info", Example: "debug",
		Description: "Lowest log level written: debug, info, warn or error."},
	{Name: EnvLogFormat, Default: "text", Example: "json",
		Description: "Log format on stderr: text or json."},
	{Name: EnvShutdownTimeout, Default: "30s", Example: "10s",
		Description: "How long a graceful shutdown may take after SIGINT or SIGTERM."},
	{Name: EnvMasterKey, Example: "q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng=", Required: "node",
		Description: "Base64 of 32 random bytes: the key that encrypts private keys and secrets at rest (dev: kept in .data/dev-master-key).", Secret: true},
	{Name: EnvMasterKeyID, Default: "k1", Example: "k2",
		Description: "Identifier stored next to every ciphertext sealed with BRIDGE_MASTER_KEY."},
	{Name: EnvMasterKeysPrevious, Example: "k0:3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		Description: "Earlier master keys as id:base64 pairs separated by commas, still accepted for decryption during a rotation.", Secret: true},
	{Name: EnvAdminToken, Example: "adm_4f9c2e7b1d8a6c3e5f0b", Required: "node",
		Description: "Bearer token for the admin endpoints, at least 16 characters (dev: generated and printed).", Secret: true},
	{Name: EnvSignupKey, Example: "sk_7d1e9a4c2b6f8e3d0a5c", Required: "node unless BRIDGE_SIGNUP_OPEN",
		Description: "Key that signup requests must present, at least 16 characters (dev: generated and printed).", Secret: true},
	{Name: EnvSignupOpen, Default: "false", Example: "true",
		Description: "Allow signup without the signup key."},
	{Name: EnvSignupRate, Default: "10", Example: "30",
		Description: "Signup requests allowed per minute from one IP address, counted in Postgres across every node of the cluster."},
	{Name: EnvRelayccSharedKey, Default: "false", Example: "true",
		Description: "Compatibility with the relaycc seed: let the signup key stand in for the hook token on /hook and /instance, for bridges made by relaycc /signup only (never for /v1 bridges)."},
	{Name: EnvTokenFailureRate, Default: "10", Example: "30",
		Description: "Failed token attempts on /hook and /instance allowed per minute from one IP address, counted in Postgres across the cluster; more are answered 429."},
	{Name: EnvMaxBridgesPerAccount, Default: "100", Example: "1000",
		Description: "Most bridges one /v1 account may hold; creating one more is answered 429 quota_exceeded."},
	{Name: EnvSendRate, Default: "20", Example: "50",
		Description: "Messages one account may send per second over the API (one relaycc bridge, for relaycc bridges), counted in Postgres across the cluster; more are answered 429."},
	{Name: EnvSendBurst, Default: "40", Example: "100",
		Description: "Sends an idle account may make at once before BRIDGE_SEND_RATE applies (the size of its token bucket)."},
	{Name: EnvAllowPrivateTargets, Default: "false (dev: true)", Example: "true",
		Description: "Allow forward targets on loopback, private and link-local addresses (turns off the SSRF check)."},
	{Name: EnvMaxBodyBytes, Default: "1048576", Example: "262144",
		Description: "Largest HTTP request body the API accepts, in bytes."},
	{Name: EnvProxyHeader, Example: "X-Real-IP",
		Description: "Header that carries the client's address when the node runs behind a reverse proxy; empty uses the connection's address. Set it only behind a proxy that overwrites the header."},
	{Name: EnvTrustedProxies, Example: "127.0.0.1,10.0.0.0/8",
		Description: "Addresses or CIDRs of the proxies whose BRIDGE_PROXY_HEADER is believed; empty believes every peer. Other peers are keyed on their connection's address."},
	{Name: EnvXMTPNode, Example: "xmtp.example.net:5556", Required: "node",
		Description: "host:port of an XMTP message API v1 gRPC endpoint; when set, dev uses it instead of starting the local node."},
	{Name: EnvXMTPTLS, Default: "false", Example: "true",
		Description: "Use TLS to reach BRIDGE_XMTP_NODE."},
	{Name: EnvXMTPCAFile, Default: "(the system's roots)", Example: "/etc/bridge/xmtp-ca.pem",
		Description: "PEM file of the certificate authorities trusted for BRIDGE_XMTP_NODE's TLS certificate instead of the system's roots; needs BRIDGE_XMTP_TLS=true."},
	{Name: EnvXMTPNodeGRPCAddr, Default: "127.0.0.1:5556", Example: "0.0.0.0:5556",
		Description: "gRPC listen address of the local XMTP node (xmtp-node, and dev without BRIDGE_XMTP_NODE)."},
	{Name: EnvXMTPNodeHTTPAddr, Default: "127.0.0.1:5555", Example: "0.0.0.0:5555",
		Description: "HTTP/JSON gateway listen address of the local XMTP node."},
	{Name: EnvXMTPNodeAuthn, Default: "true", Example: "false",
		Description: "Make the local XMTP node verify auth tokens on publish."},
	{Name: EnvXMTPNodeOpsAddr, Example: "127.0.0.1:9555",
		Description: "Where `bridge xmtp-node` serves /healthz, /readyz and /metrics; unset serves none (a bridge node serves its own on BRIDGE_HTTP_ADDR)."},
	{Name: EnvXMTPMaxEnvelopeBytes, Default: "1048576", Example: "524288",
		Description: "Largest envelope the local XMTP node accepts, in bytes."},
	{Name: EnvXMTPMaxTopicsPerRequest, Default: "1000", Example: "100",
		Description: "Most topics one query or subscription to the local XMTP node may name."},
	{Name: EnvXMTPMaxEnvelopesPerPub, Default: "16", Example: "4",
		Description: "Most envelopes one publish to the local XMTP node may carry; with BRIDGE_XMTP_MAX_ENVELOPE_BYTES it sets the largest request body the node reads."},
	{Name: EnvXMTPSubscriberBuffer, Default: "8388608", Example: "4194304",
		Description: "Bytes of envelopes that may wait for one subscriber of the local XMTP node before it is cut off as too slow; at least BRIDGE_XMTP_MAX_ENVELOPE_BYTES."},
	{Name: EnvXMTPMaxSubsPerClient, Default: "256", Example: "64",
		Description: "Most subscription streams the local XMTP node holds open for one client IP address; more are refused."},
	{Name: EnvXMTPMaxSubscriptions, Default: "10000", Example: "2000",
		Description: "Most subscription streams the local XMTP node holds open in total; more are refused."},
	{Name: EnvXMTPMaxPublishes, Default: "256", Example: "64",
		Description: "Most gRPC publishes the local XMTP node reads and handles at once, its own HTTP gateway's excepted; more are refused with UNAVAILABLE, to be retried. Each may hold up to the largest valid publish in memory (BRIDGE_XMTP_MAX_ENVELOPES_PER_PUBLISH envelopes of BRIDGE_XMTP_MAX_ENVELOPE_BYTES), so this times that size bounds what publishes can hold."},
	{Name: EnvXMTPNodeMaxConns, Default: "16", Example: "32",
		Description: "Most Postgres connections the local XMTP node holds open; its queries and publishes wait for one when all are in use, and it counts against the server's max_connections. It wins over a pool_max_conns parameter in DATABASE_URL."},
	{Name: EnvCanaryInterval, Default: "1m", Example: "30s",
		Description: "Time between two canary rounds, in which the canary identity messages every bridge (or a sample) and times the reply; 0 turns the prober off."},
	{Name: EnvCanarySample, Default: "0", Example: "100",
		Description: "How many bridges, chosen at random, one canary round probes; 0 probes every bridge."},
	{Name: EnvCanaryURL, Default: "(http://BRIDGE_HTTP_ADDR/canary)", Example: "https://bridge.example.net/canary",
		Description: "Canary endpoint the bridges' canary handlers call; by default this node's own /canary (an unspecified host becomes 127.0.0.1)."},
	{Name: EnvLeaseTTL, Default: "15s", Example: "10s",
		Description: "Lifetime of a node's lease, which its identities' fencing leases live under, renewed every third of it; after a crash, another member takes the identities over once the node lease expired."},
	{Name: EnvReconcileInterval, Default: "15s", Example: "5s",
		Description: "How often the node activates the bridges that should be online and are not, and stops disabled ones."},
	{Name: EnvSweepInterval, Default: "5s", Example: "1s",
		Description: "How often the node looks, in one query, for deliveries, replies and broadcast copies due on any identity it hosts (retries it scheduled itself are woken on time)."},
	{Name: EnvPprofAddr, Example: "127.0.0.1:6060",
		Description: "Address where the node (or `bridge xmtp-node`) serves Go's runtime profiles (/debug/pprof/) for performance work; empty serves none. Keep it on a private address."},
	{Name: EnvBreakerOpenAfter, Default: "5", Example: "10",
		Description: "Failed attempts in a row after which a bridge's endpoint breaker opens: its deliveries wait and only one probe is tried at a time."},
	{Name: EnvBreakerProbeMin, Default: "5s", Example: "1s",
		Description: "Wait before the first probe of an open endpoint; it doubles after each failed probe, up to BRIDGE_BREAKER_PROBE_MAX."},
	{Name: EnvBreakerProbeMax, Default: "5m", Example: "1m",
		Description: "Longest wait between two probes of an open endpoint; at least BRIDGE_BREAKER_PROBE_MIN."},
	{Name: EnvBreakerDisableAfter, Default: "120h", Example: "24h",
		Description: "How long an endpoint's breaker stays open before the bridge is disabled, as after a 410, until its owner sets it active again."},
	{Name: EnvPayloadRetention, Default: "720h", Example: "168h",
		Description: "How long the sealed content of a delivered or dead message and of a sent reply stays in Postgres after its last status change; then it is erased and the record and its status stay."},
	{Name: EnvQuarantineRetention, Default: "168h", Example: "24h",
		Description: "How long a quarantined message (the reason, the input's hash and its first 256 bytes) is kept."},
	{Name: EnvQuarantineMaxRows, Default: "1000", Example: "200",
		Description: "Most quarantined messages kept per bridge; each new one deletes the oldest beyond it."},
	{Name: EnvRetentionInterval, Default: "10m", Example: "1m",
		Description: "How often each node seals content an older version left in clear and erases what BRIDGE_PAYLOAD_RETENTION and BRIDGE_QUARANTINE_RETENTION let go."},
	{Name: EnvTombstoneFor, Default: "168h", Example: "24h",
		Description: "How long a deleted bridge's address answers senders, once per conversation, with BRIDGE_TOMBSTONE_MESSAGE; its keys stay sealed until then and are erased after; 0 erases them at once and answers nothing."},
	{Name: EnvTombstoneMessage, Default: DefaultTombstoneMessage, Example: "This bot moved to 0x1234…; this address no longer takes messages.",
		Description: "The one line a deleted bridge's address answers, at most 500 bytes."},
	{Name: EnvReplyLoopLimit, Default: "20", Example: "60",
		Description: "Most automatic replies of other bridges a bridge answers in one conversation per minute, counted afresh at every message that is not one; over it a delivery completes without its reply, which stops two reply-mode bridges answering each other forever; 0 turns the limit off."},
	{Name: EnvLiveRetention, Default: "168h", Example: "24h",
		Description: "How long a message of a live bridge waits for a consumer's acknowledgement; then it is counted and becomes a dead letter."},
	{Name: EnvLiveWindow, Default: "100", Example: "20",
		Description: "Default number of messages a live consumer may hold unacknowledged; a consumer may ask for fewer with ?window=."},
	{Name: EnvLiveClaimTTL, Default: "15s", Example: "5s",
		Description: "How long messages sent to a live consumer stay its own after its node stops renewing them (a node that died); then they go to the next consumer."},
	{Name: EnvBroadcastRate, Default: "50", Example: "200",
		Description: "Most copies of a broadcast one bridge queues to its subscribers per second."},
	{Name: EnvClusterProvider, Default: "automanaged", Example: "etcd",
		Description: "How nodes find each other: automanaged (a static list in BRIDGE_CLUSTER_PEERS, or a node alone), etcd (the choice for several nodes) or kubernetes (pods of the same cluster name, through the Kubernetes API)."},
	{Name: EnvClusterName, Default: "xmtp-bridge", Example: "bridge-prod",
		Description: "Name of the cluster; only nodes with the same name form one."},
	{Name: EnvClusterHost, Default: "127.0.0.1", Example: "0.0.0.0",
		Description: "Host the node's cluster (actor remote) port listens on."},
	{Name: EnvClusterPort, Default: "0", Example: "6331",
		Description: "Cluster (actor remote) port; 0 takes any free port, which the node advertises."},
	{Name: EnvClusterAdvertisedHost, Default: "(BRIDGE_CLUSTER_HOST)", Example: "bridge-1.internal",
		Description: "Host other members dial to reach this node's cluster port; needed when BRIDGE_CLUSTER_HOST is 0.0.0.0."},
	{Name: EnvClusterProviderPort, Default: "0", Example: "6330",
		Description: "automanaged: port of the health endpoint the peers poll; set it when BRIDGE_CLUSTER_PEERS lists other nodes."},
	{Name: EnvClusterPeers, Example: "bridge-1:6330,bridge-2:6330,bridge-3:6330",
		Description: "automanaged: host:port of every node's health endpoint (BRIDGE_CLUSTER_PROVIDER_PORT), this node included; empty runs the node alone."},
	{Name: EnvEtcdEndpoints, Default: "127.0.0.1:2379", Example: "etcd-1:2379,etcd-2:2379",
		Description: "etcd: comma-separated client endpoints."},
	{Name: EnvEtcdPrefix, Default: "/xmtp-bridge", Example: "/bridge-prod",
		Description: "etcd: key prefix under which the members register."},
	{Name: EnvDataDir, Default: ".data", Example: "/var/lib/bridge",
		Description: "Directory of the node's own files: the plug-in module cache and wazero's compilation cache live under plugins/."},
	{Name: EnvPluginKeepResident, Default: "5s", Example: "30s",
		Description: "How long a plug-in's compiled module and instances stay in memory after its last call."},
	{Name: EnvPluginRefetchAfter, Default: "1m", Example: "10m",
		Description: "How old a node's check of a plug-in's ETag may get before a call re-validates it (binding changes apply at once, by event)."},
	{Name: EnvPluginMaxMemory, Default: "16777216", Example: "33554432",
		Description: "Memory limit of each plug-in instance's Wasm memory, in bytes."},
	{Name: EnvPluginTimeout, Default: "100ms", Example: "250ms",
		Description: "Wall-time limit of one plug-in call, enforced by wazero's context cancellation."},
	{Name: EnvPluginMaxOutput, Default: "1048576", Example: "65536",
		Description: "Largest output a plug-in call may return, in bytes."},
	{Name: EnvPluginMaxUpload, Default: "8388608", Example: "4194304",
		Description: "Largest plug-in module an upload may carry, in bytes."},
	{Name: EnvPluginMaxPerAccount, Default: "20", Example: "100",
		Description: "How many plug-ins one account may hold."},
	{Name: EnvPluginAllowedHosts, Example: "api.example.com,*.example.org",
		Description: "Comma-separated hosts (globs allowed) plug-ins may call with Extism's HTTP function, still subject to the SSRF policy; empty gives plug-ins no network."},
}

// LookupVar returns the documentation of the variable called name.
func LookupVar(name string) (Var, bool) {
	for _, v := range Vars {
		if v.Name == name {
			return v, true
		}
	}
	return Var{}, false
}

// WriteTable writes the variables as an aligned plain-text table.
func WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDEFAULT\tREQUIRED IN\tSECRET\tDESCRIPTION")
	for _, v := range Vars {
		secret := ""
		if v.Secret {
			secret = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Name, dash(v.Default), dash(v.Required), dash(secret), v.Description)
	}
	return tw.Flush()
}

// Markdown returns the variables as the Markdown table that README.md
// carries between its env markers.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| variable | default | example | required in | secret | description |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	for _, v := range Vars {
		secret := ""
		if v.Secret {
			secret = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s | %s | %s |\n",
			v.Name, code(v.Default), v.Example, dash(v.Required), dash(secret), strings.ReplaceAll(v.Description, "|", `\|`))
	}
	return b.String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func code(s string) string {
	if s == "" {
		return "-"
	}
	if strings.HasPrefix(s, "(") || strings.Contains(s, " (") {
		return s
	}
	return "`" + s + "`"
}

// The markers around the environment table in README.md.
const (
	ReadmeBegin = "<!-- env:begin (generated by `bridge env --markdown`) -->"
	ReadmeEnd   = "<!-- env:end -->"
)

// ReadmeSection returns the text between the env markers of a README.
func ReadmeSection(readme string) (string, error) {
	_, rest, ok := strings.Cut(readme, ReadmeBegin+"\n")
	if !ok {
		return "", fmt.Errorf("find env table: README has no line %q", ReadmeBegin)
	}
	section, _, ok := strings.Cut(rest, ReadmeEnd)
	if !ok {
		return "", fmt.Errorf("find env table: README has no %q after the table", ReadmeEnd)
	}
	return section, nil
}
