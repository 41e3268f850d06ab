# bench/lib.sh: shared helpers for the benchmark scripts. Source it, then call bench_init "$@".
#
# The scripts only measure and print. Nothing here asserts a timing.
#
# Environment:
#   BENCH_RUNS   runs per figure (default 5)
#   BENCH_USER   unprivileged user to run as when started as root (default hutchtest)
#   BUILD_DIR    meson build dir holding hutch and hutch-agent (default <repo>/build)
#   BENCH_KEEP=1 keep the temporary HUTCH_HOME for a post-mortem
# shellcheck shell=bash

set -u
export LC_ALL=C

BENCH_RUNS=${BENCH_RUNS:-5}
BENCH_USER=${BENCH_USER:-hutchtest}
BENCH_SCRIPT=$(basename "$0")
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
BENCH_REPO=${BENCH_REPO:-$(dirname "$BENCH_DIR")}
BUILD_DIR=${BUILD_DIR:-$BENCH_REPO/build}

BENCH_PIDS=""     # processes to SIGKILL on exit (floor QEMUs, helpers)
BENCH_CLEANUP=""  # extra cleanup commands, run first (eval'd)
HUTCH_HOME=${HUTCH_HOME:-}

bench_die() {
	echo "$BENCH_SCRIPT: $*" >&2
	exit 1
}

bench_note() {
	echo "$BENCH_SCRIPT: $*" >&2
}

# ---- becoming the unprivileged user ----------------------------------------------------------

# As root: stage the binaries and the bench scripts in a world-readable temp dir, run this same
# script there as $BENCH_USER, remove the stage, and exit with the script's status. hutch finds
# hutch-agent beside its own binary, so both go into one dir.
bench_reexec_as_user() {
	if ! id "$BENCH_USER" >/dev/null 2>&1; then
		bench_note "creating the unprivileged user '$BENCH_USER'"
		useradd -m -s /bin/bash "$BENCH_USER" || bench_die "cannot create user '$BENCH_USER'"
	fi
	local stage home rc
	stage=$(mktemp -d /tmp/hutch-bench-stage.XXXXXX) || bench_die "mktemp failed"
	chmod 755 "$stage"
	mkdir -p "$stage/bin" "$stage/bench"
	cp "$BUILD_DIR/hutch" "$BUILD_DIR/hutch-agent" "$stage/bin/" || bench_die "cannot copy binaries"
	cp "$BENCH_DIR"/*.sh "$stage/bench/"
	chmod -R a+rX "$stage"
	home=$(getent passwd "$BENCH_USER" | cut -d: -f6)
	[ -d "$home" ] || home=/tmp
	rc=0
	(cd / && runuser -u "$BENCH_USER" -- env -i \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME="$home" USER="$BENCH_USER" LOGNAME="$BENCH_USER" TERM="${TERM:-dumb}" \
		BENCH_RUNS="$BENCH_RUNS" BENCH_KEEP="${BENCH_KEEP:-}" BENCH_EXEC_RUNS="${BENCH_EXEC_RUNS:-}" \
		BENCH_TP_RUNS="${BENCH_TP_RUNS:-}" BENCH_CLOUD_SECTIONS="${BENCH_CLOUD_SECTIONS:-}" \
		BENCH_CLOUD_FIRMWARE="${BENCH_CLOUD_FIRMWARE:-}" BENCH_BOOT_RUNS="${BENCH_BOOT_RUNS:-}" \
		BENCH_FIRMWARE="${BENCH_FIRMWARE:-}" \
		BENCH_LIST_N="${BENCH_LIST_N:-}" BENCH_BIN_DIR="$stage/bin" BENCH_REPO="$BENCH_REPO" \
		BENCH_STAGED=1 BENCH_IMAGE_DIR="${BENCH_IMAGE_DIR:-}" \
		bash "$stage/bench/$BENCH_SCRIPT" "$@") || rc=$?
	rm -rf "$stage"
	exit "$rc"
}

bench_init() {
	[ -x "$BUILD_DIR/hutch" ] || [ -n "${BENCH_BIN_DIR:-}" ] ||
		bench_die "no $BUILD_DIR/hutch: build first (meson setup build && ninja -C build)"
	if [ "$(id -u)" = 0 ]; then
		bench_reexec_as_user "$@"
	fi
	BENCH_BIN_DIR=${BENCH_BIN_DIR:-$BUILD_DIR}
	HUTCH=$BENCH_BIN_DIR/hutch
	[ -x "$HUTCH" ] || bench_die "no hutch binary at $HUTCH"
	[ -x "$BENCH_BIN_DIR/hutch-agent" ] || bench_die "no hutch-agent beside $HUTCH"
	case "$BENCH_RUNS" in '' | *[!0-9]* | 0) bench_die "BENCH_RUNS must be a positive integer" ;; esac
	HUTCH_HOME=$(mktemp -d /tmp/hutch-bench-home.XXXXXX) || bench_die "mktemp failed"
	export HUTCH_HOME
	BENCH_TMP=$HUTCH_HOME/bench
	mkdir -p "$BENCH_TMP"
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	cd "$BENCH_TMP" || bench_die "cd $BENCH_TMP"
}

# Pids of this user's processes that belong to our HUTCH_HOME: the monitors (HUTCH_HOME in their
# environment) and the QEMUs (HUTCH_HOME paths on their command line). Never a broad name match.
bench_home_pids() {
	local d pid
	[ -n "$HUTCH_HOME" ] || return 0
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		[ "$pid" = $$ ] && continue
		[ -O "$d" ] || continue
		if { tr '\0' '\n' <"$d/environ"; } 2>/dev/null | grep -qxF "HUTCH_HOME=$HUTCH_HOME" ||
			{ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null | grep -qF "$HUTCH_HOME/"; then
			# skip our own shells and their helpers: only hutch and qemu processes
			case "$(readlink "$d/exe" 2>/dev/null)" in
			*/hutch | *qemu-system*) echo "$pid" ;;
			esac
		fi
	done
}

bench_cleanup() {
	local rc=$? vm pid
	set +e
	trap - EXIT INT TERM
	if [ -n "$BENCH_CLEANUP" ]; then
		eval "$BENCH_CLEANUP" >/dev/null 2>&1
	fi
	for pid in $BENCH_PIDS; do
		kill -9 "$pid" 2>/dev/null
	done
	if [ -n "$HUTCH_HOME" ] && [ -d "$HUTCH_HOME" ]; then
		for vm in $(bench_running_vms); do
			timeout 20 "$HUTCH" stop --force "$vm" >/dev/null 2>&1
		done
		for pid in $(bench_home_pids); do
			kill -9 "$pid" 2>/dev/null
		done
		if [ -n "${BENCH_KEEP:-}" ]; then
			bench_note "kept $HUTCH_HOME"
		else
			rm -rf "$HUTCH_HOME"
		fi
	fi
	exit "$rc"
}

bench_running_vms() {
	"$HUTCH" list 2>/dev/null | awk 'NR > 1 && $2 == "running" { print $1 }'
}

# ---- timing and statistics -------------------------------------------------------------------

# Sets NOW_US (microseconds). bash 5's EPOCHREALTIME needs no fork; date +%s%N is the fallback.
bench_now() {
	if [ -n "${EPOCHREALTIME:-}" ]; then
		NOW_US=${EPOCHREALTIME/./}
	else
		NOW_US=$(($(date +%s%N) / 1000))
	fi
}

# bench_time CMD...: run CMD (output left alone), set ELAPSED_MS (wall ms, 1 decimal) and CPU_MS
# (user+sys of CMD and the children it waited for, e.g. a floor QEMU), return its status. CPU time
# barely moves when other jobs load the host; wall time does.
bench_time() {
	local t0 rc=0 tf=${BENCH_TMP:-/tmp}/.bench-time.$$ TIMEFORMAT='%3U %3S'
	bench_now
	t0=$NOW_US
	{ time "$@" 2>&3; } 3>&2 2>"$tf" || rc=$?
	bench_now
	ELAPSED_MS=$(bench_us_to_ms $((NOW_US - t0)))
	CPU_MS=$(awk '{ printf "%.1f", ($1 + $2) * 1000 }' "$tf" 2>/dev/null)
	rm -f "$tf"
	return "$rc"
}

# bench_samples ARRAY N CMD...: bench_time CMD N times, appending each ELAPSED_MS to ARRAY.
bench_samples() {
	local -n _samples=$1
	local n=$2 k
	shift 2
	for ((k = 0; k < n; k++)); do
		bench_time "$@"
		_samples+=("$ELAPSED_MS")
	done
}

# bench_proc_cpu_ms PID: user+sys CPU time of a running process so far, in ms (10 ms steps).
bench_proc_cpu_ms() {
	local st hz
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	hz=$(getconf CLK_TCK)
	echo "${st##*) }" | awk -v hz="$hz" '{ printf "%.1f", ($12 + $13) * 1000 / hz }'
}

bench_us_to_ms() {
	awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'
}

# bench_median V...: median (mean of the middle two for an even count).
bench_median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR == 0) { print "nan"; exit }
		      if (NR % 2) printf "%.1f\n", v[(NR + 1) / 2]
		      else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_pct P V...: nearest-rank percentile (P in 1..100).
bench_pct() {
	local p=$1
	shift
	printf '%s\n' "$@" | sort -g | awk -v p="$p" '{ v[NR] = $1 }
		END { if (NR == 0) { print "nan"; exit }
		      i = int((p * NR + 99) / 100); if (i < 1) i = 1; if (i > NR) i = NR
		      printf "%.1f\n", v[i] }'
}

bench_p90() { bench_pct 90 "$@"; }
bench_min() { printf '%s\n' "$@" | sort -g | head -n1; }
bench_max() { printf '%s\n' "$@" | sort -g | tail -n1; }

# bench_ratio A B: A / B with 2 decimals.
bench_ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f\n", a / b }'
}

# bench_sub A B: A - B with 1 decimal.
bench_sub() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f\n", a - b }'
}

# bench_mbps BYTES MS: throughput in MB/s (10^6 bytes).
bench_mbps() {
	awk -v b="$1" -v m="$2" 'BEGIN { if (m + 0 == 0) print "n/a"; else printf "%.1f\n", b / 1e6 / (m / 1000) }'
}

# ---- output ----------------------------------------------------------------------------------

# Every script prints Markdown: a "### title" line, a line of context, then tables. run-all.sh
# pastes that output into docs/PERFORMANCE.md unchanged.
bench_title() {
	echo
	echo "### $*"
	echo
}

bench_row() {
	local out="|" c
	for c in "$@"; do
		out="$out $c |"
	done
	echo "$out"
}

bench_header() {
	bench_row "$@"
	local out="|" c
	for c in "$@"; do
		out="$out---|"
	done
	echo "$out"
}

# ---- hutch helpers ---------------------------------------------------------------------------

# bench_hutch ARGS...: run hutch quietly (stdout and stderr to the per-script log).
bench_hutch() {
	"$HUTCH" "$@" >>"$BENCH_TMP/hutch.log" 2>&1
}

bench_hutch_or_die() {
	bench_hutch "$@" || {
		tail -n 20 "$BENCH_TMP/hutch.log" >&2
		bench_die "hutch $* failed"
	}
}

# bench_render NAME: fill RENDER_ARGV with the exact QEMU argv hutch would run for NAME.
# The render is shell-quoted, one argument per line with backslash continuations.
bench_render() {
	local text
	text=$("$HUTCH" inspect --render "$1") || bench_die "hutch inspect --render $1 failed"
	case "$text" in /*) ;; *) bench_die "unexpected render output: $text" ;; esac
	eval "RENDER_ARGV=($text)"
}

# bench_render_opt OPT: the value after the first OPT in RENDER_ARGV.
bench_render_opt() {
	local i
	for ((i = 0; i < ${#RENDER_ARGV[@]} - 1; i++)); do
		if [ "${RENDER_ARGV[i]}" = "$1" ]; then
			echo "${RENDER_ARGV[i + 1]}"
			return 0
		fi
	done
	return 1
}

# bench_json_num KEY < JSON: a numeric top-level field (hutch's own --json output).
bench_json_num() {
	sed -n "s/^ *\"$1\": *\([0-9.-]*\).*/\1/p" | head -n1
}

# ---- the floor -------------------------------------------------------------------------------

# bench_floor_init DIR: build DIR/init, a static program that powers the guest off at once.
# musl-gcc, then gcc -static, then a static busybox as the fallbacks.
bench_floor_init() {
	local dir=$1 src=$BENCH_TMP/floor-init.c cc
	mkdir -p "$dir"
	cat >"$src" <<'EOF'
#include <sys/reboot.h>
#include <unistd.h>
int main(void)
{
	static const char msg[] = "floor-init: powering off\n";
	if (write(1, msg, sizeof(msg) - 1) < 0) { /* no console is fine */ }
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}
EOF
	for cc in musl-gcc gcc; do
		if command -v "$cc" >/dev/null && "$cc" -static -Os -o "$dir/init" "$src" 2>/dev/null; then
			strip "$dir/init" 2>/dev/null
			FLOOR_INIT_KIND="static C init ($cc), $(stat -c %s "$dir/init") bytes"
			return 0
		fi
	done
	if [ -x /bin/busybox ] && file /bin/busybox 2>/dev/null | grep -q static; then
		cp /bin/busybox "$dir/busybox"
		printf '#!/busybox sh\necho floor-init: powering off\n/busybox poweroff -f\n' >"$dir/init"
		chmod 755 "$dir/init"
		FLOOR_INIT_KIND="busybox-static script"
		return 0
	fi
	bench_die "cannot build a static init: need musl-gcc, a static libc, or busybox-static"
}

# bench_cpio DIR OUT: pack DIR as a newc cpio (cpio, else bsdcpio).
bench_cpio() {
	local dir=$1 out=$2
	if command -v cpio >/dev/null; then
		(cd "$dir" && find . -mindepth 1 | sed 's|^\./||' | cpio -o -H newc -R 0:0 --quiet) >"$out"
	elif command -v bsdcpio >/dev/null; then
		(cd "$dir" && find . -mindepth 1 | sed 's|^\./||' | bsdcpio -o --format newc --quiet) >"$out"
	else
		bench_die "need cpio or bsdcpio to pack the floor initramfs"
	fi
}

# bench_floor_setup NAME: take kernel, memory, accel, cpu, machine and command line from hutch's
# render of NAME, and build the floor initramfs. Sets FLOOR_ARGV (the minimal microvm command),
# FLOOR_INITRD, FLOOR_LOG and FLOOR_DESC.
bench_floor_setup() {
	bench_render "$1"
	local qemu machine accel cpu mem smp kernel append
	qemu=${RENDER_ARGV[0]}
	machine=$(bench_render_opt -M)
	accel=$(bench_render_opt -accel)
	cpu=$(bench_render_opt -cpu)
	mem=$(bench_render_opt -m)
	smp=$(bench_render_opt -smp)
	kernel=$(bench_render_opt -kernel)
	append=$(bench_render_opt -append)
	FLOOR_KERNEL=$kernel
	FLOOR_APPEND=$append
	FLOOR_HUTCH_INITRD=$(bench_render_opt -initrd)
	bench_floor_init "$BENCH_TMP/floor-root"
	FLOOR_INITRD=$BENCH_TMP/floor-initramfs.cpio
	bench_cpio "$BENCH_TMP/floor-root" "$FLOOR_INITRD"
	FLOOR_LOG=$BENCH_TMP/floor-serial.log
	FLOOR_ARGV=("$qemu" -M "$machine" -accel "$accel" -cpu "$cpu" -m "$mem" -smp "$smp"
		-nodefaults -no-user-config -display none -no-reboot
		-serial "file:$FLOOR_LOG" -kernel "$kernel" -initrd "$FLOOR_INITRD" -append "$append")
	FLOOR_DESC="raw \`qemu-system-x86_64 -M $machine -accel $accel -m $mem\`, same kernel and command line, $(stat -c %s "$FLOOR_INITRD")-byte initramfs whose init powers off at once"
}

# bench_floor_variant_full: hutch's exact argv (all its devices, sandbox), with its sockets turned
# into null/file chardevs and the tiny initramfs. Sets FLOOR_FULL_ARGV.
bench_floor_variant_full() {
	local a prev="" id
	FLOOR_FULL_ARGV=()
	for a in "${RENDER_ARGV[@]}"; do
		if [ "$prev" = -chardev ]; then
			case "$a" in
			socket,*)
				id=$(echo "$a" | tr ',' '\n' | sed -n 's/^id=//p')
				if [ "$id" = console ]; then
					a="file,id=$id,path=$FLOOR_LOG"
				else
					a="null,id=$id"
				fi
				;;
			esac
		elif [ "$prev" = -initrd ]; then
			a=$FLOOR_INITRD
		fi
		FLOOR_FULL_ARGV+=("$a")
		prev=$a
	done
}

# bench_floor_variant_initrd: like the full variant, but with hutch's own initramfs plus a
# second cpio holding the poweroff init as /floor-init (rdinit=). Measures unpacking hutch's
# initramfs, without its module loading or agent. Sets FLOOR_INITRD_ARGV.
bench_floor_variant_initrd() {
	local a prev="" root=$BENCH_TMP/floor-root2 combo=$BENCH_TMP/floor-hutch-initramfs.cpio
	mkdir -p "$root"
	cp "$BENCH_TMP/floor-root/init" "$root/floor-init"
	[ -e "$BENCH_TMP/floor-root/busybox" ] && cp "$BENCH_TMP/floor-root/busybox" "$root/busybox"
	bench_cpio "$root" "$BENCH_TMP/floor-extra.cpio"
	cat "$FLOOR_HUTCH_INITRD" "$BENCH_TMP/floor-extra.cpio" >"$combo"
	FLOOR_INITRD_ARGV=()
	for a in "${FLOOR_FULL_ARGV[@]}"; do
		if [ "$prev" = -initrd ]; then
			a=$combo
		elif [ "$prev" = -append ]; then
			a="$a rdinit=/floor-init"
		fi
		FLOOR_INITRD_ARGV+=("$a")
		prev=$a
	done
}

# bench_floor_run ARGV...: one boot to poweroff, timed into ELAPSED_MS. Checks that QEMU exited 0
# and that the floor init really ran (its line is in the serial log).
bench_floor_run() {
	local rc=0
	: >"$FLOOR_LOG"
	bench_time timeout 120 "$@" >"$BENCH_TMP/floor-qemu.out" 2>&1 || rc=$?
	if [ "$rc" != 0 ]; then
		cat "$BENCH_TMP/floor-qemu.out" >&2
		bench_die "floor QEMU exited with status $rc"
	fi
	grep -q "floor-init: powering off" "$FLOOR_LOG" ||
		bench_die "floor: the init did not run (see $FLOOR_LOG; BENCH_KEEP=1 keeps it)"
}

# bench_floor_samples N ARGV...: N floor boots; sets SAMPLES.
bench_floor_samples() {
	local n=$1 i
	shift
	SAMPLES=()
	for ((i = 0; i < n; i++)); do
		bench_floor_run "$@"
		SAMPLES+=("$ELAPSED_MS")
	done
}

# ---- machine description (run-all.sh) --------------------------------------------------------

bench_accel() {
	if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then echo KVM; else echo "TCG (no usable /dev/kvm)"; fi
}

# bench_monitor_pid NAME: pid of NAME's monitor (ours only: HUTCH_HOME in its environment).
bench_monitor_pid() {
	local pid args
	for pid in $(bench_home_pids); do
		args=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)
		case "$args" in
		*" __monitor $1 "*) echo "$pid" && return 0 ;;
		esac
	done
	return 1
}

# bench_child_pid PID: the first child of PID (the monitor's QEMU).
bench_child_pid() {
	local c
	c=$({ cat /proc/"$1"/task/*/children; } 2>/dev/null | tr ' ' '\n' | grep . | head -n1)
	[ -n "$c" ] && echo "$c"
}

# bench_rss_kb PID: VmRSS in KiB.
bench_rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

# bench_load_note: one line on what else runs here, since other load skews every figure.
bench_load_note() {
	local others
	others=$(pgrep -c qemu-system 2>/dev/null)
	others=${others:-0}
	echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); QEMU processes on the host at the end, ours included: $others."
}

# bench_summary FIGURE HUTCH PEER RATIO TARGET: one line for the summary table of
# docs/PERFORMANCE.md, as an HTML comment (invisible in the rendered tables).
bench_summary() {
	echo "<!-- summary: $1 | $2 | $3 | $4 | $5 -->"
}

# bench_skip TITLE SUMMARY-NAME REASON: a bench that cannot run here says why, in its section and in
# the summary table, and exits 0.
bench_skip() {
	bench_title "$1"
	echo "skipped: $3"
	bench_summary "$2" "–" "skipped: $3" "–" "–"
	exit 0
}
