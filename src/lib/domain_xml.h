/* The libvirt domain XML of a VM, written with libxml2's xmlTextWriter (never by pasting strings).
 * The same inputs as the QEMU argv (struct qemu_plan), so both backends boot the same guest. */
#pragma once
#include "spec.h"
struct shares;
#include "util.h"

/* The namespace of the metadata element that marks a domain as hutch's. */
#define DOMAIN_XML_NS "https://hutch.invalid/xmlns/domain/1"
#define DOMAIN_XML_NS_PREFIX "hutch"
#define DOMAIN_PREFIX "hutch-"

struct domain_xml_input {
	const char *domain;  /* hutch-NAME */
	const char *vm_name; /* NAME, recorded in the metadata */
	const char *vm_dir;  /* its hutch data dir, also in the metadata: two hutch homes never share one */
	const char *uuid;    /* the defined domain's, when it is defined again; NULL: libvirt picks one */
	const struct vm_spec *spec;
	const char *emulator; /* qemu-system-x86_64; NULL: libvirt's default */
	bool kvm;
	const char *cpu; /* the model for -cpu (max, host...) */
	/* micro: direct kernel boot */
	const char *kernel, *initrd, *cmdline;
	const char *snapshot_disk; /* a persistent one: the qcow2 its snapshots live in (virt_snapshot.h) */
	/* image VMs */
	const char *disk, *seed, *fw_code, *fw_vars, *nvram, *smbios_cred;
	bool tpm;
	const char *console_log;     /* the serial console is also logged here; NULL: not logged */
	bool passt;		     /* forwards as <portForward> on a passt interface; else QEMU's user net */
	char *const *snippets;	     /* raw XML from the spec, already checked by domain_xml_check_snippet */
	const struct shares *shares; /* shares.h: 9p <filesystem>s (virtiofs is refused: see shares.c) */
};

/* The whole document into *ret. */
int domain_xml_render(const struct domain_xml_input *in, char **ret, struct hutch_error *err);
/* One raw XML snippet: well-formed, one element. *ret_device: it goes into <devices>. */
int domain_xml_check_snippet(const char *xml, bool *ret_device, struct hutch_error *err);
/* The domain name of VM NAME. */
char *domain_xml_name(const char *vm_name);
/* <hostdev type='usb'> for one host device (vendor, product, bus and device number), for
 * virDomainAttachDevice and virDomainDetachDevice at runtime. */
int domain_xml_usb_hostdev(unsigned vendor, unsigned product, unsigned bus, unsigned dev, char **ret,
			   struct hutch_error *err);
