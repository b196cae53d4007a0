#include "data/jpeg_markers.h"

#include <cstring>

namespace dp::data {

namespace {

uint32_t read_u16(const uint8_t* p, bool little) {
  return little ? (p[0] | (p[1] << 8)) : ((p[0] << 8) | p[1]);
}

uint32_t read_u32(const uint8_t* p, bool little) {
  return little ? (uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24))
                : ((uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]});
}

}  // namespace

int exif_orientation_from_tiff(const uint8_t* tiff, size_t size) {
  if (size < 8) return 0;
  bool little;
  if (tiff[0] == 'I' && tiff[1] == 'I') little = true;
  else if (tiff[0] == 'M' && tiff[1] == 'M') little = false;
  else return 0;
  if (read_u16(tiff + 2, little) != 42) return 0;
  const uint64_t ifd = read_u32(tiff + 4, little);
  if (ifd + 2 > size) return 0;
  const uint32_t entries = read_u16(tiff + ifd, little);
  for (uint32_t e = 0; e < entries; ++e) {
    const uint64_t entry = ifd + 2 + 12ull * e;
    if (entry + 12 > size) return 0;
    if (read_u16(tiff + entry, little) != 0x0112) continue;
    const uint32_t type = read_u16(tiff + entry + 2, little);
    // SHORT (3) is what the standard says; tolerate LONG (4) written by some tools.
    uint32_t value = type == 3 ? read_u16(tiff + entry + 8, little)
                   : type == 4 ? read_u32(tiff + entry + 8, little) : 0;
    return (value >= 1 && value <= 8) ? static_cast<int>(value) : 0;
  }
  return 0;
}

JpegMarkers scan_jpeg_markers(const uint8_t* data, size_t size) {
  JpegMarkers markers;
  if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) return markers;
  size_t pos = 2;
  while (pos + 4 <= size) {
    if (data[pos] != 0xFF) return markers;
    const uint8_t marker = data[pos + 1];
    if (marker == 0xFF) { ++pos; continue; }  // fill byte
    if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) { pos += 2; continue; }
    if (marker == 0xDA || marker == 0xD9) return markers;  // start of scan / end of image
    const size_t length = (size_t{data[pos + 2]} << 8) | data[pos + 3];
    if (length < 2 || pos + 2 + length > size) return markers;
    const uint8_t* payload = data + pos + 4;
    const size_t payload_size = length - 2;
    if (marker == 0xE1 && payload_size > 6 && std::memcmp(payload, "Exif\0\0", 6) == 0 &&
        markers.exif_orientation == 0)
      markers.exif_orientation = exif_orientation_from_tiff(payload + 6, payload_size - 6);
    if (marker == 0xEE && payload_size >= 12 && std::memcmp(payload, "Adobe", 5) == 0) {
      markers.has_adobe = true;
      markers.adobe_transform = payload[11];
    }
    pos += 2 + length;
  }
  return markers;
}

}  // namespace dp::data
