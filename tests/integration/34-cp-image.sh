#!/usr/bin/env bash
# hutch cp-image (issue 15): a container image from the host into a guest's podman storage over an
# exec session. The guest is the Debian root filesystem with podman (HUTCH_GUEST_ROOTFS, made by
# tests/fixtures/guest-rootfs.sh) as a plain OCI image, booted under micro's kernel with the agent as
# shim; the image copied in is a small busybox one (oci-image.py), as an OCI layout (written as an
# oci-archive on the fly) and as a docker-archive (streamed as it is). podman in the guest lists it
# under the --as tag with the image's own ID. Errors: a VM that is not running, a bad REF, a
# guest without podman or docker (micro).
# once
# timeout: 1500
. "$(dirname "$0")/lib.sh"
exec </dev/null

if [ -z "${HUTCH_GUEST_ROOTFS:-}" ] || [ ! -r "$HUTCH_GUEST_ROOTFS" ]; then
	echo "ok 1 # SKIP no guest root filesystem with podman (run.sh makes it as root from the Debian test image)"
	echo "1..1"
	exit 0
fi
export HUTCH_CMD_TIMEOUT=900

# the OCI image of the guest root filesystem: run.sh's cached one (HUTCH_GUEST_OCI), else made here
if [ -n "${HUTCH_GUEST_OCI:-}" ] && [ -d "$HUTCH_GUEST_OCI/layout" ]; then
	ln -s "$HUTCH_GUEST_OCI" "$T/guest"
fi
ok "an OCI image of the Debian root with podman (no kernel)" \
	sh -c '[ -d "$1/layout" ] || python3 "$2" "$3" "$1" --no-kernel' sh "$T/guest" "$_lib_dir/oci-image.py" "$HUTCH_GUEST_ROOTFS"
ok "a small busybox root filesystem" python3 "$_lib_dir/oci-image.py" --busybox-base "$T/bb.tar"
ok "a small image from it" python3 "$_lib_dir/oci-image.py" "$T/bb.tar" "$T/small" --no-kernel
id=$(python3 -c 'import json, sys
d = sys.argv[1]
m = json.load(open(d + "/index.json"))["manifests"][0]["digest"][7:]
print(json.load(open(d + "/blobs/sha256/" + m))["config"]["digest"][7:])' "$T/small/layout")

run hutch create g --oci "oci:$T/guest/layout:test" -m 1G -d 4G
is "$RC" 0 "create g from the image with podman"

run hutch cp-image g "oci:$T/small/layout:test"
is "$RC" 1 "cp-image into a VM that is not running fails"
like "$ERR" "not running" "and says the VM is not running"

run hutch start g --timeout 600
is "$RC" 0 "start g (micro's kernel, the image's disk as root)"
[ "$RC" -eq 0 ] || diag "$(tail -20 "$HUTCH_HOME/data/vms/g/console.log" 2>/dev/null)"
# micro's kernel has no overlay module: podman as root on vfs
run hutch exec g -- sh -c 'printf "[storage]\ndriver = \"vfs\"\nrunroot = \"/run/containers/storage\"\ngraphroot = \"/var/lib/containers/storage\"\n" >/etc/containers/storage.conf'
is "$RC" 0 "exec g: podman's storage on vfs"

run hutch cp-image g "bogus:$T/small/layout"
is "$RC" 1 "cp-image with a bad REF fails"
like "$ERR" "bogus" "and names the reference"
run hutch cp-image g "oci:$T/nonexistent"
is "$RC" 1 "cp-image of a missing layout fails"

run hutch cp-image g "oci:$T/small/layout:test" --as test:1
is "$RC" 0 "cp-image g oci:DIR:TAG --as test:1"
run hutch exec g -- podman images --format '{{.Repository}}:{{.Tag}} {{.ID}}'
like "$OUT" "localhost/test:1 ${id:0:12}" "podman in the guest lists it as test:1 with the image's ID"

run hutch --json cp-image g "docker-archive:$T/small/docker.tar"
is "$RC" 0 "cp-image g docker-archive:FILE --json"
is "$(printf '%s' "$OUT" | python3 -c 'import json, sys; j = json.load(sys.stdin); print(j["engine"], j["image"], j["bytes"])')" \
	"podman localhost/hutch/test:latest $(stat -c %s "$T/small/docker.tar")" \
	"--json: the engine, the archive's own name and the bytes streamed"
run hutch exec g -- podman image inspect --format '{{.Id}}' hutch/test:latest
is "$OUT" "$id" "podman has it under the archive's name, the same image"

run hutch create m -t micro
run hutch start m
is "$RC" 0 "start a micro VM (no podman, no docker)"
run hutch cp-image m "oci:$T/small/layout:test"
is "$RC" 1 "cp-image into a guest without podman or docker fails"
like "$ERR" "neither podman nor docker" "and says so"

done_testing
