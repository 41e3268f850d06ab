# The libvirt session daemons for this user, under systemd --user: each starts on the first
# connection to its socket in $XDG_RUNTIME_DIR/libvirt (qemu:///session).
# Run it: hutch service render --init systemd | sh
set -e
# No systemd user units are installed for virtlogd, libvirtd (libvirt packages them as system
# units only, for qemu:///system), so these are written to ~/.config/systemd/user.
units="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"
mkdir -p "$units"
cat >"$units/virtlogd.socket" <<'EOF'
[Unit]
Description=libvirt log daemon socket (hutch service render)

[Socket]
ListenStream=%t/libvirt/virtlogd-sock
SocketMode=0600
DirectoryMode=0700
RemoveOnStop=yes

[Install]
WantedBy=sockets.target
EOF
cat >"$units/virtlogd.service" <<'EOF'
[Unit]
Description=libvirt log daemon (hutch service render)
Documentation=man:virtlogd(8)
Requires=virtlogd.socket

[Service]
ExecStart=/usr/sbin/virtlogd
Restart=on-failure

[Install]
Also=virtlogd.socket
EOF
cat >"$units/libvirtd.socket" <<'EOF'
[Unit]
Description=libvirt session daemon socket (hutch service render)

[Socket]
ListenStream=%t/libvirt/libvirt-sock
SocketMode=0600
DirectoryMode=0700
RemoveOnStop=yes

[Install]
WantedBy=sockets.target
EOF
cat >"$units/libvirtd.service" <<'EOF'
[Unit]
Description=libvirt session daemon (hutch service render)
Documentation=man:libvirtd(8)
Requires=libvirtd.socket
Wants=virtlogd.socket
After=virtlogd.socket

[Service]
Type=notify
ExecStart=/usr/sbin/libvirtd --timeout 120
KillMode=process
Restart=on-failure

[Install]
Also=libvirtd.socket
EOF
systemctl --user daemon-reload
systemctl --user enable --now virtlogd.socket libvirtd.socket
