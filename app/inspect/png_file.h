// Writing 8-bit images as PNG with libpng, so that the tools need no OpenCV image codecs
// (whose Debian build drags in GDAL, OpenEXR, TIFF... too much for the GPU kit to carry).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dp::app::inspect {

// `bgr`: height rows of width × 3 bytes in blue-green-red order (OpenCV's CV_8UC3), rows
// `row_stride` bytes apart. Throws dp::Error naming the path when the file cannot be written.
void write_png_bgr(const std::string& path, const uint8_t* bgr, int width, int height, size_t row_stride);

// The same PNG in memory (e.g. for a TensorBoard image summary).
std::vector<uint8_t> encode_png_bgr(const uint8_t* bgr, int width, int height, size_t row_stride);

// Reads a PNG as 8-bit BGR rows (width × 3 bytes each), for tests that check a written picture.
std::vector<uint8_t> read_png_bgr(const std::string& path, int& width, int& height);

}  // namespace dp::app::inspect
