#!/usr/bin/env python3
"""Build a two-layer container image from a root filesystem tarball, for hutch's OCI tests.

    oci-image.py BASE.tar OUTDIR [--no-kernel] [--fault KIND]
    oci-image.py --busybox-base BASE.tar

The second form writes a small root filesystem tarball made from the host's static busybox, with
the ownership and modes only root could give files on disk (tarfile writes them as any user):
/usr/bin/sudo a root-owned setuid copy of busybox, /etc/shadow 0640 root:42, /dev/null a device
node, /bin/ls a hard link, /root 0700.

Writes OUTDIR/layout (an OCI image layout tagged 'test', gzip layers, a real manifest and config)
and OUTDIR/docker.tar (the same image as `docker save` writes it: uncompressed layers, manifest.json).

Layer 1 is BASE.tar as it is (ownership, modes, device nodes kept), plus /etc/hutch-oci-deleted and
/opt/hutch-lower/old. Layer 2 deletes /etc/hutch-oci-deleted with a whiteout, makes /opt/hutch-lower
opaque (old goes, new comes) and adds /etc/hutch-oci-layer2. Unless --no-kernel, layer 2 also puts the
kernel and initramfs of BASE's /boot under /usr/lib/modules/RELEASE/ (vmlinuz, initramfs.img) as a
bootc image carries them; with --no-kernel, /boot and /usr/lib/modules are left out.

--fault: digest (a layer byte flipped after the manifest was written), truncated (layer 2 cut short,
and the manifest made for the cut bytes), dotdot (layer 2 has an entry ../escape), missing (the
manifest names a blob that is not there), norootfs (the config has no rootfs).
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile

MTIME = 1700000000


def add_file(tar, name, data, mode=0o644, uid=0, gid=0):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = mode
    ti.uid, ti.gid = uid, gid
    ti.mtime = MTIME
    tar.addfile(ti, io.BytesIO(data))


def add_dir(tar, name, mode=0o755):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = mode
    ti.mtime = MTIME
    tar.addfile(ti)


def strip(name):
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def layer1(base, no_kernel):
    buf = io.BytesIO()
    kernels = {}
    with tarfile.open(base, "r:*") as src, tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out:
        for ti in src:
            n = strip(ti.name)
            if no_kernel and (n == "boot" or n.startswith("boot/") or n.startswith("usr/lib/modules")
                              or n.startswith("lib/modules")):
                continue
            m = re.match(r"boot/(vmlinuz|initrd\.img)-(.+)$", n)
            if m and ti.isreg():
                kernels.setdefault(m.group(2), {})[m.group(1)] = src.extractfile(ti).read()
            if ti.isreg():
                out.addfile(ti, src.extractfile(ti))
            else:
                out.addfile(ti)
        add_file(out, "etc/hutch-oci-deleted", b"a whiteout in layer 2 removes me\n")
        add_dir(out, "opt/hutch-lower")
        add_file(out, "opt/hutch-lower/old", b"hidden by the opaque dir of layer 2\n")
    return buf.getvalue(), kernels


def layer2(kernels, no_kernel, fault):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out:
        add_file(out, "etc/.wh.hutch-oci-deleted", b"")
        add_dir(out, "opt/hutch-lower")
        add_file(out, "opt/hutch-lower/.wh..wh..opq", b"")
        add_file(out, "opt/hutch-lower/new", b"from layer 2\n")
        add_file(out, "etc/hutch-oci-layer2", b"layer 2 was here\n")
        if not no_kernel:
            for rel, k in sorted(kernels.items()):
                if "vmlinuz" in k and "initrd.img" in k:
                    add_file(out, "usr/lib/modules/%s/vmlinuz" % rel, k["vmlinuz"])
                    add_file(out, "usr/lib/modules/%s/initramfs.img" % rel, k["initrd.img"], mode=0o600)
        if fault == "dotdot":
            add_file(out, "../escape", b"outside\n")
    return buf.getvalue()


def sha(b):
    return hashlib.sha256(b).hexdigest()


def busybox_base(out):
    bb = open(shutil.which("busybox") or "/bin/busybox", "rb").read()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
        for d, mode in [("bin", 0o755), ("usr", 0o755), ("usr/bin", 0o755), ("etc", 0o755), ("dev", 0o755),
                        ("root", 0o700), ("tmp", 0o1777), ("opt", 0o755)]:
            add_dir(t, d, mode)
        add_file(t, "bin/busybox", bb, 0o755)
        ti = tarfile.TarInfo("bin/ls")
        ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.LNKTYPE, "bin/busybox", 0o755, MTIME
        t.addfile(ti)
        for n in ["sh", "id", "pwd", "stat", "cat", "df", "test", "mount"]:
            ti = tarfile.TarInfo("bin/" + n)
            ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.SYMTYPE, "busybox", 0o777, MTIME
            t.addfile(ti)
        add_file(t, "usr/bin/sudo", bb, 0o4755)
        add_file(t, "etc/shadow", b"root:*:19000:0:99999:7:::\n", 0o640, 0, 42)
        add_file(t, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
        add_file(t, "etc/group", b"root:x:0:\nshadow:x:42:\nnogroup:x:65534:\n")
        add_file(t, "etc/owned-by-nobody", b"x\n", 0o600, 65534, 65534)
        ti = tarfile.TarInfo("dev/null")
        ti.type, ti.devmajor, ti.devminor, ti.mode, ti.mtime = tarfile.CHRTYPE, 1, 3, 0o666, MTIME
        t.addfile(ti)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--busybox-base":
        busybox_base(sys.argv[2])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("out")
    ap.add_argument("--no-kernel", action="store_true")
    ap.add_argument("--fault", choices=["digest", "truncated", "dotdot", "missing", "norootfs"])
    a = ap.parse_args()

    l1, kernels = layer1(a.base, a.no_kernel)
    l2 = layer2(kernels, a.no_kernel, a.fault)
    layers = [l1, l2]
    gz = [gzip.compress(l, compresslevel=1, mtime=0) for l in layers]
    if a.fault == "truncated":
        gz[1] = gz[1][: len(gz[1]) // 2]
    config = {
        "created": "2023-11-14T22:13:20Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HUTCH_OCI=yes"],
            "Cmd": ["/bin/sh", "-c", "echo hello from $HUTCH_OCI in $(pwd) as $(id -un)"],
            "WorkingDir": "/opt/hutch-lower",
            "User": "root",
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(l) for l in layers]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "oci-image.py"}] * 2,
    }
    if a.fault:
        # a faulty image is another image: the cache of a good one must not answer for it
        config["config"]["Labels"] = {"hutch.test.fault": a.fault}
    if a.fault == "norootfs":
        del config["rootfs"]
    cfg = json.dumps(config, sort_keys=True).encode()

    lay = os.path.join(a.out, "layout")
    shutil.rmtree(lay, ignore_errors=True)
    blobs = os.path.join(lay, "blobs", "sha256")
    os.makedirs(blobs)

    def put(b):
        h = sha(b)
        with open(os.path.join(blobs, h), "wb") as f:
            f.write(b)
        return {"digest": "sha256:" + h, "size": len(b)}

    cd = put(cfg)
    cd["mediaType"] = "application/vnd.oci.image.config.v1+json"
    lds = []
    for g in gz:
        d = put(g)
        d["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
        lds.append(d)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": cd, "layers": lds}
    md = put(json.dumps(manifest, sort_keys=True).encode())
    md["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    md["annotations"] = {"org.opencontainers.image.ref.name": "test"}
    with open(os.path.join(lay, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [md]}, f)
    with open(os.path.join(lay, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    if a.fault == "digest":
        p = os.path.join(blobs, lds[1]["digest"][7:])
        with open(p, "r+b") as f:
            f.seek(len(gz[1]) // 2)
            c = f.read(1)
            f.seek(len(gz[1]) // 2)
            f.write(bytes([c[0] ^ 0xFF]))
    if a.fault == "missing":
        os.unlink(os.path.join(blobs, lds[1]["digest"][7:]))

    # the same image as `docker save` writes it
    with tarfile.open(os.path.join(a.out, "docker.tar"), "w", format=tarfile.PAX_FORMAT) as dt:
        names = []
        for l in layers:
            n = "%s/layer.tar" % sha(l)
            add_dir(dt, sha(l))
            add_file(dt, n, l)
            names.append(n)
        cname = sha(cfg) + ".json"
        add_file(dt, cname, cfg)
        add_file(dt, "manifest.json", json.dumps(
            [{"Config": cname, "RepoTags": ["hutch/test:latest"], "Layers": names}]).encode())
    print(md["digest"])


if __name__ == "__main__":
    main()
