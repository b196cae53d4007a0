// The few facts TurboJPEG does not tell us, read from the JPEG marker segments directly:
// whether an Adobe APP14 segment is present (it decides how CMYK values are stored) and the
// EXIF orientation tag (APP1 "Exif"). Parsing stops at the first SOS; it never reads scan data.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dp::data {

struct JpegMarkers {
  bool has_adobe = false;
  int adobe_transform = -1;  // 0: none (RGB/CMYK), 1: YCbCr, 2: YCCK
  int exif_orientation = 0;  // 1..8 when an EXIF orientation tag is present, else 0
};

// Never throws: malformed segments just end the scan (the decoder reports real corruption).
JpegMarkers scan_jpeg_markers(const uint8_t* data, size_t size);

// The orientation tag (0x0112) of IFD0 in a TIFF block ("II*\0" or "MM\0*" header), 0 if absent.
int exif_orientation_from_tiff(const uint8_t* tiff, size_t size);

}  // namespace dp::data
