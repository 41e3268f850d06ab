/* VM colours (spec `color:`): CSS named colours, #rrggbb (and #rgb), rgb(R, G, B). */
#pragma once
#include "util.h"

/* Parse a colour into 0xRRGGBB. Names are case-insensitive. -EINVAL for anything else. */
int color_parse(const char *s, uint32_t *ret_rgb);
/* "#rrggbb" for a parsed colour, into buf (at least 8 bytes). */
const char *color_hex(uint32_t rgb, char *buf, size_t len);
/* A two-cell swatch in 24-bit colour for a terminal: ESC[48;2;R;G;Bm  ESC[0m. */
const char *color_swatch(uint32_t rgb, char *buf, size_t len);
/* color_swatch for a spec's colour, or two blanks when it has none (or it does not parse). */
const char *color_swatch_or_blank(const char *spec_color, char *buf, size_t len);
/* The colour's name in the spec, or a hint of what is accepted, for error messages. */
#define COLOR_FORMATS "a named colour (darkgreen), #rrggbb or rgb(R, G, B)"
