package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/xmtpbridge/bridge/internal/testkit"
)

// This file reads what the nodes of a cluster test say about the cluster:
// the admin views of members and placement, the metrics, and the leases
// straight from Postgres.

// httpClient bounds every admin and metrics request of the harness.
var httpClient = &http.Client{Timeout: 10 * time.Second}

// doJSON sends a JSON request and decodes a JSON answer into out (when not
// nil). It never fails the test, so goroutines and polls can use it.
func doJSON(client *http.Client, method, url, token string, body, out any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, raw, err
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, raw, fmt.Errorf("decode %s %s answer %q: %w", method, url, testkit.Tail(string(raw), 300), err)
		}
	}
	return resp.StatusCode, raw, nil
}

// memberView is one row of GET /v1/admin/cluster/members.
type memberView struct {
	ID      string `json:"id"`
	Node    string `json:"node"`
	Address string `json:"address"`
	Self    bool   `json:"self"`
}

// membersView is GET /v1/admin/cluster/members.
type membersView struct {
	Provider string       `json:"provider"`
	Self     string       `json:"self"`
	Members  []memberView `json:"members"`
}

// placementRow is one identity of GET /v1/admin/cluster/placement.
type placementRow struct {
	BridgeID  string
	Address   string
	Node      string
	Owner     string
	Epoch     int64
	ExpiresAt string
}

// UnmarshalJSON reads a placement row; a row without a bridge id, node,
// owner, epoch or RFC 3339 expiry is an error.
func (r *placementRow) UnmarshalJSON(raw []byte) error {
	var v struct {
		BridgeID  string `json:"bridgeId"`
		Address   string `json:"address"`
		Node      string `json:"node"`
		Owner     string `json:"owner"`
		Epoch     int64  `json:"epoch"`
		ExpiresAt string `json:"expiresAt"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	*r = placementRow{BridgeID: v.BridgeID, Address: v.Address, Node: v.Node, Owner: v.Owner, Epoch: v.Epoch, ExpiresAt: v.ExpiresAt}
	if r.BridgeID == "" || r.Node == "" || r.Owner == "" || r.Epoch < 1 {
		return fmt.Errorf("placement row without bridge id, node, owner or epoch: %s", raw)
	}
	if _, err := time.Parse(time.RFC3339Nano, r.ExpiresAt); err != nil {
		return fmt.Errorf("placement row expiry %q is not RFC 3339: %s", r.ExpiresAt, raw)
	}
	return nil
}

// members reads the node's view of the cluster members.
func (n *clusterNode) members() (membersView, error) {
	var v membersView
	status, raw, err := doJSON(httpClient, "GET", n.api+"/v1/admin/cluster/members", adminToken, nil, &v)
	if err == nil && status != 200 {
		err = fmt.Errorf("GET %s/v1/admin/cluster/members: status %d: %s", n.api, status, testkit.Tail(string(raw), 300))
	}
	return v, err
}

// placement reads the node's view of where every identity with a live
// lease runs.
func (n *clusterNode) placement() ([]placementRow, error) {
	var v struct {
		Identities []placementRow `json:"identities"`
	}
	status, raw, err := doJSON(httpClient, "GET", n.api+"/v1/admin/cluster/placement", adminToken, nil, &v)
	if err == nil && status != 200 {
		err = fmt.Errorf("GET %s/v1/admin/cluster/placement: status %d: %s", n.api, status, testkit.Tail(string(raw), 300))
	}
	return v.Identities, err
}

// metricSum adds up every series of the metric called exactly name on the
// node's /metrics; ok is false when the node did not answer or has no such
// series.
func (n *clusterNode) metricSum(name string) (sum float64, ok bool) { return metricSum(n.api, name) }

// metricSum adds up every series of the metric called exactly name on the
// /metrics of the node whose API is api (http://host:port).
func metricSum(api, name string) (sum float64, ok bool) {
	resp, err := httpClient.Get(api + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, name) || len(line) == len(name) {
			continue
		}
		if c := line[len(name)]; c != ' ' && c != '{' {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		// The value follows the name and its labels; labels may hold spaces,
		// so it is taken from the end (no exposition timestamps here).
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			continue
		}
		sum += v
		ok = true
	}
	return sum, ok
}

// hosted returns bridge_actor_hosted_identities of the node, or -1 when it
// cannot be read.
func (n *clusterNode) hosted() int {
	v, ok := n.metricSum("bridge_actor_hosted_identities")
	if !ok {
		return -1
	}
	return int(v)
}

// live returns the nodes whose process runs.
func (c *bridgeCluster) live() []*clusterNode {
	var out []*clusterNode
	for _, n := range c.nodes {
		if n.alive() {
			out = append(out, n)
		}
	}
	return out
}

// except returns nodes without skip.
func except(nodes []*clusterNode, skip *clusterNode) []*clusterNode {
	var out []*clusterNode
	for _, n := range nodes {
		if n != skip {
			out = append(out, n)
		}
	}
	return out
}

func nodeIDs(nodes []*clusterNode) []string {
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.id)
	}
	return out
}

// membersMatch reports whether every node of nodes sees exactly the members
// of nodes, one per node, itself marked self; why says what differs.
func membersMatch(nodes []*clusterNode) (ok bool, why string) {
	want := map[string]bool{}
	for _, n := range nodes {
		want[n.id] = true
	}
	for _, n := range nodes {
		v, err := n.members()
		if err != nil {
			return false, err.Error()
		}
		seen := map[string]int{}
		selves := 0
		for _, m := range v.Members {
			seen[m.Node]++
			if m.Self {
				selves++
				if m.Node != n.id {
					return false, fmt.Sprintf("%s marks member %s of node %s as self", n.id, m.ID, m.Node)
				}
			}
		}
		if len(v.Members) != len(want) || selves != 1 {
			return false, fmt.Sprintf("%s sees %d members (%v), %d marked self; want %v", n.id, len(v.Members), seen, selves, nodeIDs(nodes))
		}
		for id := range want {
			if seen[id] != 1 {
				return false, fmt.Sprintf("%s sees node %s %d times in %v", n.id, id, seen[id], v.Members)
			}
		}
	}
	return true, ""
}

// waitMembers waits until every node of nodes sees exactly nodes as the
// cluster's members.
func (c *bridgeCluster) waitMembers(nodes []*clusterNode, timeout time.Duration) {
	c.t.Helper()
	var why string
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		if ok, why = membersMatch(nodes); ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the members views did not settle on %v within %s: %s", nodeIDs(nodes), timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// placementCheck is what one node's placement view says about bridges.
type placementCheck struct {
	byBridge map[string]placementRow
	perNode  map[string]int
	problems []string
}

// checkPlacement reads n's placement and checks that each of bridges
// appears exactly once and on one of nodes.
func checkPlacement(n *clusterNode, bridges []clusterBridge, nodes []*clusterNode) (placementCheck, error) {
	rows, err := n.placement()
	if err != nil {
		return placementCheck{}, err
	}
	want := map[string]bool{}
	for _, b := range bridges {
		want[b.ID] = true
	}
	allowed := map[string]bool{}
	for _, m := range nodes {
		allowed[m.id] = true
	}
	pc := placementCheck{byBridge: map[string]placementRow{}, perNode: map[string]int{}}
	for _, r := range rows {
		if !want[r.BridgeID] {
			continue
		}
		if _, dup := pc.byBridge[r.BridgeID]; dup {
			pc.problems = append(pc.problems, fmt.Sprintf("bridge %s appears twice in %s's placement", r.BridgeID, n.id))
		}
		pc.byBridge[r.BridgeID] = r
		pc.perNode[r.Node]++
		if !allowed[r.Node] {
			pc.problems = append(pc.problems, fmt.Sprintf("bridge %s is on %s, not one of %v", r.BridgeID, r.Node, nodeIDs(nodes)))
		}
	}
	if missing := len(want) - len(pc.byBridge); missing > 0 {
		pc.problems = append(pc.problems, fmt.Sprintf("%d of %d bridges have no live lease in %s's placement", missing, len(want), n.id))
	}
	return pc, nil
}

// waitPlaced waits until the placement that from sees puts every bridge
// once on one of on, and returns it.
func (c *bridgeCluster) waitPlaced(from *clusterNode, bridges []clusterBridge, on []*clusterNode, timeout time.Duration) placementCheck {
	c.t.Helper()
	var last placementCheck
	var lastErr error
	deadline := time.Now().Add(timeout)
	for {
		pc, err := checkPlacement(from, bridges, on)
		if err == nil && len(pc.problems) == 0 {
			return pc
		}
		last, lastErr = pc, err
		if time.Now().After(deadline) {
			if lastErr != nil {
				c.t.Fatalf("placement of %d bridges on %v not reached within %s: %v", len(bridges), nodeIDs(on), timeout, lastErr)
			}
			c.t.Fatalf("placement of %d bridges on %v not reached within %s: per node %v; %s", len(bridges), nodeIDs(on), timeout,
				last.perNode, strings.Join(firstN(last.problems, 5), "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitHostedTotal waits until the hosted-identities gauges of nodes add up
// to want and each equals that node's count in the placement that from
// sees, so no identity runs on two nodes and each lease's owner really
// hosts it. It returns the per-node counts.
func (c *bridgeCluster) waitHostedTotal(from *clusterNode, bridges []clusterBridge, nodes []*clusterNode, timeout time.Duration) map[string]int {
	c.t.Helper()
	var why string
	deadline := time.Now().Add(timeout)
	for {
		hosted := map[string]int{}
		total := 0
		for _, n := range nodes {
			hosted[n.id] = n.hosted()
			total += hosted[n.id]
		}
		pc, err := checkPlacement(from, bridges, nodes)
		switch {
		case err != nil:
			why = err.Error()
		case len(pc.problems) > 0:
			why = strings.Join(firstN(pc.problems, 3), "; ")
		case total != len(bridges):
			why = fmt.Sprintf("hosted identities %v add up to %d, want %d", hosted, total, len(bridges))
		default:
			why = ""
			for _, n := range nodes {
				if hosted[n.id] != pc.perNode[n.id] {
					why = fmt.Sprintf("hosted identities %v differ from the placement %v", hosted, pc.perNode)
				}
			}
			if why == "" {
				return hosted
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("hosting of %d bridges on %v not settled within %s: %s", len(bridges), nodeIDs(nodes), timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("(%d more)", len(s)-n))
	}
	return s
}

// leaseRow is one row of identity_leases.
type leaseRow struct {
	Identity string
	Owner    string
	Epoch    int64
	Live     bool
}

// memberOfOwner returns the member id at the start of a lease owner
// ("<node id>.<random>/<nonce>") and the node id in it.
func memberOfOwner(owner string) (member, node string) {
	member, _, _ = strings.Cut(owner, "/")
	node = member
	if i := strings.LastIndex(member, "."); i > 0 {
		node = member[:i]
	}
	return member, node
}

// memberKey is the random part of a member id: what follows the last "."
// of a lease owner's "<node id>.<random>", or the last "@" of protoactor's
// "<cluster name>@<random>", which the members view may show instead.
func memberKey(id string) string {
	if i := strings.LastIndexAny(id, ".@"); i >= 0 {
		return id[i+1:]
	}
	return id
}

// leases reads the identity leases straight from Postgres, by identity.
func (c *bridgeCluster) leases() map[string]leaseRow {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.x.db)
	if err != nil {
		c.t.Fatalf("connect to the test database: %v", err)
	}
	defer conn.Close(context.Background())
	// Live is the lease's validity: not released, unexpired, and its node
	// lease, if it has one, unexpired.
	rows, err := conn.Query(ctx, `SELECT l.identity, l.owner, l.epoch, NOT l.released AND l.expires_at > now() AND
		(l.node_lease IS NULL OR EXISTS (SELECT 1 FROM node_leases n WHERE n.id = l.node_lease AND n.expires_at > now()))
		FROM identity_leases l`)
	if err != nil {
		c.t.Fatalf("read identity_leases: %v", err)
	}
	out := map[string]leaseRow{}
	for rows.Next() {
		var l leaseRow
		if err := rows.Scan(&l.Identity, &l.Owner, &l.Epoch, &l.Live); err != nil {
			c.t.Fatalf("read identity_leases: %v", err)
		}
		out[l.Identity] = l
	}
	if err := rows.Err(); err != nil {
		c.t.Fatalf("read identity_leases: %v", err)
	}
	return out
}

// drain asks via to drain the node called id and returns the status and
// the decoded answer.
func drain(t testing.TB, via *clusterNode, id string) (int, map[string]any) {
	t.Helper()
	var out map[string]any
	status, raw, err := doJSON(&http.Client{Timeout: time.Minute}, "POST", via.api+"/v1/admin/nodes/"+id+"/drain", adminToken, nil, nil)
	if err != nil {
		t.Fatalf("drain %s through %s: %v", id, via.id, err)
	}
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("drain %s through %s: decode %q: %v", id, via.id, raw, err)
		}
	}
	return status, out
}

// waitMemberGone waits until every node of survivors sees exactly the
// survivors as members (so no member of gone, not even one that no longer
// answers who it is), and returns when that happened.
func (c *bridgeCluster) waitMemberGone(gone *clusterNode, survivors []*clusterNode, timeout time.Duration) time.Time {
	c.t.Helper()
	var why string
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		if ok, why = membersMatch(survivors); ok {
			return time.Now()
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s still in the members view of %v after %s: %s", gone.id, nodeIDs(survivors), timeout, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
