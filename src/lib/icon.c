/* Icon sanitising with libpng's simplified API: read into a fixed RGBA buffer after the header's
 * size is checked, write a fresh PNG from it. libpng checks CRCs, zlib streams and chunk lengths;
 * ancillary chunks (text, ICC, EXIF) do not survive the round trip. */
#include "icon.h"

#include <png.h>
#include <string.h>

int icon_sanitize(const void *untrusted_png, size_t len, char **ret, size_t *ret_len, unsigned *ret_w, unsigned *ret_h,
		  struct hutch_error *err)
{
	return png_sanitize(untrusted_png, len, "icon", ICON_BYTES_MAX, ICON_SIDE_MAX, ret, ret_len, ret_w, ret_h, err);
}

int png_sanitize(const void *untrusted_png, size_t len, const char *what, size_t bytes_max, unsigned side_max,
		 char **ret, size_t *ret_len, unsigned *ret_w, unsigned *ret_h, struct hutch_error *err)
{
	if (len > bytes_max)
		return hutch_error_set(err, EFBIG, "%s larger than %zu bytes", what, bytes_max);
	png_image img;
	memset(&img, 0, sizeof(img));
	img.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_memory(&img, untrusted_png, len))
		return hutch_error_set(err, EINVAL, "not a PNG %s: %s", what, img.message);
	if (img.width == 0 || img.height == 0 || img.width > side_max || img.height > side_max) {
		unsigned w = img.width, h = img.height;
		png_image_free(&img);
		return hutch_error_set(err, EFBIG, "%s of %ux%u pixels (at most %u a side)", what, w, h, side_max);
	}
	img.format = PNG_FORMAT_RGBA;
	size_t stride = PNG_IMAGE_ROW_STRIDE(img);
	_cleanup_free_ unsigned char *px = xmalloc(PNG_IMAGE_BUFFER_SIZE(img, stride));
	if (!png_image_finish_read(&img, NULL, px, (png_int_32)stride, NULL)) {
		_cleanup_free_ char *msg = xstrdup(img.message);
		png_image_free(&img);
		return hutch_error_set(err, EINVAL, "bad PNG %s: %s", what, msg);
	}
	png_alloc_size_t out_len = 0;
	png_image out;
	memset(&out, 0, sizeof(out));
	out.version = PNG_IMAGE_VERSION;
	out.width = img.width;
	out.height = img.height;
	out.format = PNG_FORMAT_RGBA;
	if (!png_image_write_get_memory_size(out, out_len, 0, px, (png_int_32)stride, NULL))
		return hutch_error_set(err, EIO, "cannot encode the %s: %s", what, out.message);
	char *buf = xmalloc(out_len);
	if (!png_image_write_to_memory(&out, buf, &out_len, 0, px, (png_int_32)stride, NULL)) {
		free(buf);
		return hutch_error_set(err, EIO, "cannot encode the %s: %s", what, out.message);
	}
	*ret = buf;
	*ret_len = out_len;
	*ret_w = img.width;
	*ret_h = img.height;
	return 0;
}
