// Package monitoring holds the tests of the Prometheus and Grafana files in
// deploy/prometheus and deploy/grafana; it has no code of its own.
//
// The tests run Debian's promtool and prometheus (scripts/ensure-tools.sh
// installs them) and fail with a message naming the package when they are
// missing:
//
//   - promtool checks prometheus.yml and alerts.yml and runs the rule unit
//     tests in alerts_test.yml;
//   - every alert rule has a unit test that fires it and one that keeps it
//     quiet: the tests break each rule on purpose (never true, always true)
//     and require promtool to report exactly that rule's cases;
//   - a real Prometheus loads alerts.yml and reports every rule with its
//     severity and annotations;
//   - the live test starts a bridge node in-process on a fresh database,
//     lets a real Prometheus scrape it every second with the shipped rules,
//     checks the documented series through Prometheus's HTTP API, lints the
//     node's /metrics with `promtool check metrics`, checks that every
//     metric the dashboard and the rules name is one the node exports, then
//     stops the node and waits for BridgeNodeDown to fire in Prometheus's
//     own rule evaluation.
//
// # Imports
//
// Like deploy/deploytest and e2e, its tests test the whole: they may
// import any folder of the module (system and http, to run a node) except
// cmd, and nothing imports them. internal/layout checks these rules.
package monitoring
