package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
)

// redacted stands in for a secret that is set.
const redacted = "[redacted]"

// RedactURL returns a database URL with its password replaced, so it can be
// logged. A value that does not parse is hidden entirely.
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return redacted
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func secret(v string) string {
	if v == "" {
		return ""
	}
	return redacted
}

func secretKey(k []byte) string {
	if k == nil {
		return ""
	}
	return redacted
}

// LogValue makes slog print the configuration with every secret hidden.
func (c Config) LogValue() slog.Value {
	prev := make([]string, len(c.PreviousMasterKeys))
	for i, k := range c.PreviousMasterKeys {
		prev[i] = k.ID
	}
	return slog.GroupValue(
		slog.String("mode", string(c.Mode)),
		slog.String("database_url", RedactURL(c.DatabaseURL)),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("node_id", c.NodeID),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", c.LogFormat),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
		slog.String("master_key_id", c.MasterKey.ID),
		slog.String("master_key", secretKey(c.MasterKey.Key)),
		slog.String("previous_master_key_ids", strings.Join(prev, ",")),
		slog.String("admin_token", secret(c.AdminToken)),
		slog.String("signup_key", secret(c.SignupKey)),
		slog.Bool("signup_open", c.SignupOpen),
		slog.Int("signup_rate_per_minute", c.SignupRatePerMinute),
		slog.Bool("relaycc_shared_key", c.RelayccSharedKey),
		slog.Int("token_failures_per_minute", c.TokenFailuresPerMinute),
		slog.Int("max_bridges_per_account", c.MaxBridgesPerAccount),
		slog.Int("send_rate_per_second", c.SendRatePerSecond),
		slog.Int("send_burst", c.SendBurst),
		slog.Bool("allow_private_targets", c.AllowPrivateTargets),
		slog.Int("max_body_bytes", c.MaxBodyBytes),
		slog.String("xmtp_node", c.XMTPNode),
		slog.Bool("xmtp_tls", c.XMTPTLS),
		slog.String("xmtp_ca_file", c.XMTPCAFile),
		slog.String("xmtp_node_grpc_addr", c.XMTPNodeGRPCAddr),
		slog.String("xmtp_node_http_addr", c.XMTPNodeHTTPAddr),
		slog.Bool("xmtp_node_authn", c.XMTPNodeAuthn),
		slog.String("xmtp_node_ops_addr", c.XMTPNodeOpsAddr),
		slog.String("pprof_addr", c.PprofAddr),
		slog.Int("xmtp_max_envelope_bytes", c.XMTPMaxEnvelopeBytes),
		slog.Int("xmtp_max_topics_per_request", c.XMTPMaxTopicsPerRequest),
		slog.Duration("canary_interval", c.CanaryInterval),
		slog.Int("canary_sample", c.CanarySample),
		slog.String("canary_url", RedactURL(c.CanaryURL)),
		slog.Duration("lease_ttl", c.LeaseTTL),
		slog.Duration("reconcile_interval", c.ReconcileInterval),
		slog.Duration("sweep_interval", c.SweepInterval),
		slog.Int("reply_loop_limit", c.ReplyLoopLimit),
		slog.Int("breaker_open_after", c.BreakerOpenAfter),
		slog.Duration("breaker_probe_min", c.BreakerProbeMin),
		slog.Duration("breaker_probe_max", c.BreakerProbeMax),
		slog.Duration("breaker_disable_after", c.BreakerDisableAfter),
		slog.String("proxy_header", c.ProxyHeader),
		slog.String("trusted_proxies", strings.Join(c.TrustedProxies, ",")),
		slog.String("cluster_provider", c.Cluster.Provider),
		slog.String("cluster_name", c.Cluster.Name),
		slog.String("cluster_host", c.Cluster.Host),
		slog.Int("cluster_port", c.Cluster.Port),
		slog.String("cluster_advertised_host", c.Cluster.AdvertisedHost),
		slog.Int("cluster_provider_port", c.Cluster.ProviderPort),
		slog.String("cluster_peers", strings.Join(c.Cluster.Peers, ",")),
		slog.String("etcd_endpoints", strings.Join(c.Cluster.EtcdEndpoints, ",")),
		slog.String("etcd_prefix", c.Cluster.EtcdPrefix),
	)
}

// String prints the configuration with every secret hidden, so that %v and
// %+v never show one.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("config{")
	for i, a := range c.LogValue().Group() {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", a.Key, a.Value.String())
	}
	b.WriteByte('}')
	return b.String()
}

// GoString keeps %#v from printing the secrets too.
func (c Config) GoString() string { return c.String() }

// Format makes every fmt verb print the redacted form, including %v of a
// Config value rather than a pointer.
func (c Config) Format(f fmt.State, verb rune) {
	fmt.Fprint(f, c.String())
}

// LogValue hides the key of a MasterKey.
func (k MasterKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", k.ID), slog.String("key", secretKey(k.Key)))
}

// String hides the key of a MasterKey.
func (k MasterKey) String() string { return "MasterKey{" + k.ID + " " + secretKey(k.Key) + "}" }

// GoString hides the key of a MasterKey from %#v.
func (k MasterKey) GoString() string { return k.String() }

// Format makes every fmt verb print a MasterKey without its key.
func (k MasterKey) Format(f fmt.State, verb rune) { fmt.Fprint(f, k.String()) }
