package testkit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPUTime returns the user plus system CPU time the process pid used so
// far, from /proc/<pid>/stat (Linux): what benchmarks that measure the
// CPU of a node process or of Postgres backends read.
func CPUTime(pid int) (time.Duration, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read process cpu time (Linux /proc is needed): %w", err)
	}
	// The command name may hold spaces; the fields after it are fixed.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("read process cpu time of %d: short /proc stat", pid)
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}

// MachineCPU returns the CPU time the whole machine spent busy (every state
// but idle and I/O wait) and in all, summed over its cores, from /proc/stat
// (Linux). Two readings give the share of the machine a phase used.
func MachineCPU() (busy, all time.Duration, err error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("read machine cpu time (Linux /proc is needed): %w", err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	fields := strings.Fields(line)
	if len(fields) < 6 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("read machine cpu time: unexpected /proc/stat line %q", line)
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	var total, idle int64
	for i, f := range fields[1:] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("read machine cpu time: field %d of /proc/stat: %w", i+1, err)
		}
		// guest and guest_nice are already counted in user and nice.
		if i >= 8 {
			break
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	tick := time.Second / ticksPerSecond
	return time.Duration(total-idle) * tick, time.Duration(total) * tick, nil
}

// RSS returns the resident set size of process pid in bytes, from
// /proc/<pid>/status (Linux).
func RSS(pid int) (int64, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("read process status (Linux /proc is needed): %w", err)
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in the status of process %d", pid)
}
