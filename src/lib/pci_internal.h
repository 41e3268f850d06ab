/* Shared between pci.c (reading sysfs) and pci_switch.c (writing it); not for other modules. */
#pragma once
#include "pci.h"

/* Paths under HUTCH_SYSFS_ROOT / HUTCH_PROC_ROOT. */
char *pci_sys(const char *fmt, ...) _printf_(1, 2);
char *pci_proc(const char *fmt, ...) _printf_(1, 2);
char *pci_read_attr(const char *path);
bool pci_link_base(const char *path, char *out, size_t len);
char **pci_dir_names(const char *path);
void pci_func_load(const char *addr, struct pci_func *f);
bool pci_find_wedge(char *why, size_t len);
char *pci_poison_path(const char *state_dir, const char *addr);
