/* libvirt and libxml2, loaded on first use like the libraries in lazylib.h: a hutch that never
 * touches a libvirt VM never loads them, and a host without them still runs every qemu-backend
 * verb. Include <libvirt/libvirt.h> and <libxml/xmlwriter.h> (and <libxml/parser.h>) first. */
#pragma once

#include "lazylib.h"

int lazy_virt_load(struct hutch_error *err);
int lazy_xml_load(struct hutch_error *err);

#ifdef LIBVIR_VERSION_NUMBER
#include <libvirt/virterror.h>
#define LAZY_VIRT_FUNCS(X)                    \
	X(virConnectClose)                    \
	X(virConnectDomainEventDeregisterAny) \
	X(virConnectDomainEventRegisterAny)   \
	X(virConnectGetAllDomainStats)        \
	X(virConnectGetURI)                   \
	X(virConnectIsAlive)                  \
	X(virConnectListAllDomains)           \
	X(virConnectOpen)                     \
	X(virConnectRef)                      \
	X(virConnectSetKeepAlive)             \
	X(virDomainAttachDeviceFlags)         \
	X(virDomainCreateWithFlags)           \
	X(virDomainDetachDeviceFlags)         \
	X(virDomainCreateXML)                 \
	X(virDomainDefineXMLFlags)            \
	X(virDomainDestroy)                   \
	X(virDomainFree)                      \
	X(virDomainGetInfo)                   \
	X(virDomainGetMetadata)               \
	X(virDomainGetName)                   \
	X(virDomainGetState)                  \
	X(virDomainGetXMLDesc)                \
	X(virDomainGetUUIDString)             \
	X(virDomainIsPersistent)              \
	X(virDomainLookupByName)              \
	X(virDomainOpenChannel)               \
	X(virDomainRef)                       \
	X(virDomainSetAutostart)              \
	X(virDomainShutdown)                  \
	X(virDomainListAllSnapshots)          \
	X(virDomainRevertToSnapshot)          \
	X(virDomainSnapshotCreateXML)         \
	X(virDomainSnapshotDelete)            \
	X(virDomainSnapshotFree)              \
	X(virDomainSnapshotGetName)           \
	X(virDomainSnapshotGetXMLDesc)        \
	X(virDomainSnapshotLookupByName)      \
	X(virDomainStatsRecordListFree)       \
	X(virDomainUndefineFlags)             \
	X(virEventAddTimeout)                 \
	X(virEventRegisterDefaultImpl)        \
	X(virEventRemoveTimeout)              \
	X(virEventRunDefaultImpl)             \
	X(virEventUpdateTimeout)              \
	X(virGetLastError)                    \
	X(virGetLastErrorMessage)             \
	X(virGetVersion)                      \
	X(virResetLastError)                  \
	X(virSetErrorFunc)                    \
	X(virStreamAbort)                     \
	X(virStreamEventAddCallback)          \
	X(virStreamEventRemoveCallback)       \
	X(virStreamEventUpdateCallback)       \
	X(virStreamFinish)                    \
	X(virStreamFree)                      \
	X(virStreamNew)                       \
	X(virStreamRecv)                      \
	X(virStreamSend)                      \
	X(virTypedParamsGetInt)

struct lazy_virt_table {
	LAZY_VIRT_FUNCS(LAZY_FIELD)
};
const struct lazy_virt_table *lazy_virt(void); /* loaded, or exit 127 */
#ifndef LAZY_IMPL
#define virConnectClose (*lazy_virt()->virConnectClose)
#define virConnectDomainEventDeregisterAny (*lazy_virt()->virConnectDomainEventDeregisterAny)
#define virConnectDomainEventRegisterAny (*lazy_virt()->virConnectDomainEventRegisterAny)
#define virConnectGetAllDomainStats (*lazy_virt()->virConnectGetAllDomainStats)
#define virConnectGetURI (*lazy_virt()->virConnectGetURI)
#define virConnectIsAlive (*lazy_virt()->virConnectIsAlive)
#define virConnectListAllDomains (*lazy_virt()->virConnectListAllDomains)
#define virConnectOpen (*lazy_virt()->virConnectOpen)
#define virConnectRef (*lazy_virt()->virConnectRef)
#define virConnectSetKeepAlive (*lazy_virt()->virConnectSetKeepAlive)
#define virDomainAttachDeviceFlags (*lazy_virt()->virDomainAttachDeviceFlags)
#define virDomainCreateWithFlags (*lazy_virt()->virDomainCreateWithFlags)
#define virDomainDetachDeviceFlags (*lazy_virt()->virDomainDetachDeviceFlags)
#define virDomainCreateXML (*lazy_virt()->virDomainCreateXML)
#define virDomainDefineXMLFlags (*lazy_virt()->virDomainDefineXMLFlags)
#define virDomainDestroy (*lazy_virt()->virDomainDestroy)
#define virDomainFree (*lazy_virt()->virDomainFree)
#define virDomainGetInfo (*lazy_virt()->virDomainGetInfo)
#define virDomainGetMetadata (*lazy_virt()->virDomainGetMetadata)
#define virDomainGetName (*lazy_virt()->virDomainGetName)
#define virDomainGetState (*lazy_virt()->virDomainGetState)
#define virDomainGetXMLDesc (*lazy_virt()->virDomainGetXMLDesc)
#define virDomainGetUUIDString (*lazy_virt()->virDomainGetUUIDString)
#define virDomainIsPersistent (*lazy_virt()->virDomainIsPersistent)
#define virDomainLookupByName (*lazy_virt()->virDomainLookupByName)
#define virDomainOpenChannel (*lazy_virt()->virDomainOpenChannel)
#define virDomainRef (*lazy_virt()->virDomainRef)
#define virDomainSetAutostart (*lazy_virt()->virDomainSetAutostart)
#define virDomainShutdown (*lazy_virt()->virDomainShutdown)
#define virDomainListAllSnapshots (*lazy_virt()->virDomainListAllSnapshots)
#define virDomainRevertToSnapshot (*lazy_virt()->virDomainRevertToSnapshot)
#define virDomainSnapshotCreateXML (*lazy_virt()->virDomainSnapshotCreateXML)
#define virDomainSnapshotDelete (*lazy_virt()->virDomainSnapshotDelete)
#define virDomainSnapshotFree (*lazy_virt()->virDomainSnapshotFree)
#define virDomainSnapshotGetName (*lazy_virt()->virDomainSnapshotGetName)
#define virDomainSnapshotGetXMLDesc (*lazy_virt()->virDomainSnapshotGetXMLDesc)
#define virDomainSnapshotLookupByName (*lazy_virt()->virDomainSnapshotLookupByName)
#define virDomainStatsRecordListFree (*lazy_virt()->virDomainStatsRecordListFree)
#define virDomainUndefineFlags (*lazy_virt()->virDomainUndefineFlags)
#define virEventAddTimeout (*lazy_virt()->virEventAddTimeout)
#define virEventRegisterDefaultImpl (*lazy_virt()->virEventRegisterDefaultImpl)
#define virEventRemoveTimeout (*lazy_virt()->virEventRemoveTimeout)
#define virEventRunDefaultImpl (*lazy_virt()->virEventRunDefaultImpl)
#define virEventUpdateTimeout (*lazy_virt()->virEventUpdateTimeout)
#define virGetLastError (*lazy_virt()->virGetLastError)
#define virGetLastErrorMessage (*lazy_virt()->virGetLastErrorMessage)
#define virGetVersion (*lazy_virt()->virGetVersion)
#define virResetLastError (*lazy_virt()->virResetLastError)
#define virSetErrorFunc (*lazy_virt()->virSetErrorFunc)
#define virStreamAbort (*lazy_virt()->virStreamAbort)
#define virStreamEventAddCallback (*lazy_virt()->virStreamEventAddCallback)
#define virStreamEventRemoveCallback (*lazy_virt()->virStreamEventRemoveCallback)
#define virStreamEventUpdateCallback (*lazy_virt()->virStreamEventUpdateCallback)
#define virStreamFinish (*lazy_virt()->virStreamFinish)
#define virStreamFree (*lazy_virt()->virStreamFree)
#define virStreamNew (*lazy_virt()->virStreamNew)
#define virStreamRecv (*lazy_virt()->virStreamRecv)
#define virStreamSend (*lazy_virt()->virStreamSend)
#define virTypedParamsGetInt (*lazy_virt()->virTypedParamsGetInt)
#endif
#endif

#ifdef LIBXML_VERSION
#include <libxml/uri.h>

/* Not xmlFree: it is a variable holding a function pointer, not a function. */
#define LAZY_XML_FUNCS(X)                \
	X(xmlBufferContent)              \
	X(xmlBufferCreate)               \
	X(xmlBufferFree)                 \
	X(xmlDocGetRootElement)          \
	X(xmlFreeDoc)                    \
	X(xmlFreeTextWriter)             \
	X(xmlFreeURI)                    \
	X(xmlGetLastError)               \
	X(xmlNewTextWriterMemory)        \
	X(xmlParseURI)                   \
	X(xmlReadMemory)                 \
	X(xmlTextWriterEndDocument)      \
	X(xmlTextWriterEndElement)       \
	X(xmlTextWriterSetIndent)        \
	X(xmlTextWriterSetIndentString)  \
	X(xmlTextWriterStartDocument)    \
	X(xmlTextWriterStartElement)     \
	X(xmlTextWriterStartElementNS)   \
	X(xmlTextWriterWriteAttribute)   \
	X(xmlTextWriterWriteAttributeNS) \
	X(xmlTextWriterWriteElement)     \
	X(xmlTextWriterWriteRaw)         \
	X(xmlTextWriterWriteString)      \
	X(xmlURIUnescapeString)

struct lazy_xml_table {
	LAZY_XML_FUNCS(LAZY_FIELD)
};
const struct lazy_xml_table *lazy_xml(void); /* loaded, or exit 127 */
#ifndef LAZY_IMPL
#define xmlBufferContent (*lazy_xml()->xmlBufferContent)
#define xmlBufferCreate (*lazy_xml()->xmlBufferCreate)
#define xmlBufferFree (*lazy_xml()->xmlBufferFree)
#define xmlDocGetRootElement (*lazy_xml()->xmlDocGetRootElement)
#define xmlFreeDoc (*lazy_xml()->xmlFreeDoc)
#define xmlFreeTextWriter (*lazy_xml()->xmlFreeTextWriter)
#define xmlFreeURI (*lazy_xml()->xmlFreeURI)
#define xmlGetLastError (*lazy_xml()->xmlGetLastError)
#define xmlNewTextWriterMemory (*lazy_xml()->xmlNewTextWriterMemory)
#define xmlParseURI (*lazy_xml()->xmlParseURI)
#define xmlReadMemory (*lazy_xml()->xmlReadMemory)
#define xmlTextWriterEndDocument (*lazy_xml()->xmlTextWriterEndDocument)
#define xmlTextWriterEndElement (*lazy_xml()->xmlTextWriterEndElement)
#define xmlTextWriterSetIndent (*lazy_xml()->xmlTextWriterSetIndent)
#define xmlTextWriterSetIndentString (*lazy_xml()->xmlTextWriterSetIndentString)
#define xmlTextWriterStartDocument (*lazy_xml()->xmlTextWriterStartDocument)
#define xmlTextWriterStartElement (*lazy_xml()->xmlTextWriterStartElement)
#define xmlTextWriterStartElementNS (*lazy_xml()->xmlTextWriterStartElementNS)
#define xmlTextWriterWriteAttribute (*lazy_xml()->xmlTextWriterWriteAttribute)
#define xmlTextWriterWriteAttributeNS (*lazy_xml()->xmlTextWriterWriteAttributeNS)
#define xmlTextWriterWriteElement (*lazy_xml()->xmlTextWriterWriteElement)
#define xmlTextWriterWriteRaw (*lazy_xml()->xmlTextWriterWriteRaw)
#define xmlTextWriterWriteString (*lazy_xml()->xmlTextWriterWriteString)
#define xmlURIUnescapeString (*lazy_xml()->xmlURIUnescapeString)
#endif
#endif
