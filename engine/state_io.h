// How an owner of training state (the model, the optimisers, the data parameters, the σ history,
// the run's progress) saves and loads its part of a checkpoint without knowing the file format:
// named tensors (datasets) and named scalars (attributes). app/checkpoint_schema.cpp implements
// both over an HDF5 tensor file and composes the parts; docs/checkpoint.md lists every name.
//
// A reader remembers which tensors the owners took, so that the schema can report whatever no
// owner claimed instead of ignoring it. Every check below names the dataset or attribute.
#pragma once
#include <fmt/format.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace dp {

class StateWriter {
 public:
  virtual ~StateWriter() = default;
  virtual void tensor(const std::string& name, const Tensor& value) = 0;
  virtual void integer(const std::string& name, int64_t value) = 0;
  virtual void real(const std::string& name, double value) = 0;
  virtual void text(const std::string& name, const std::string& value) = 0;
};

class StateReader {
 public:
  virtual ~StateReader() = default;
  // The tensor `name`, or nullptr when absent; a tensor taken is not a leftover.
  virtual const Tensor* take(const std::string& name) = 0;
  virtual bool contains(const std::string& name) const = 0;
  virtual std::optional<int64_t> integer(const std::string& name) const = 0;
  virtual std::optional<double> real(const std::string& name) const = 0;
  virtual std::optional<std::string> text(const std::string& name) const = 0;
  // Throws dp::Error naming the source (the file) and `what`.
  [[noreturn]] virtual void invalid(const std::string& what) const = 0;

  void expect_shape(const std::string& name, const Tensor& t, const Shape& want, const std::string& because) const {
    if (t.shape() != want)
      invalid(fmt::format("dataset /{} has shape {}, but {} needs {}", name, shape_str(t.shape()), because,
                          shape_str(want)));
  }
  void expect_dtype(const std::string& name, const Tensor& t, DType want) const {
    if (t.dtype() != want) invalid(fmt::format("dataset /{} is {}, expected {}", name, dtype_name(t.dtype()), dtype_name(want)));
  }
  // A tensor that must be there, of this dtype and shape.
  const Tensor& require(const std::string& name, DType dtype, const Shape& shape, const std::string& because) {
    const Tensor* t = take(name);
    if (t == nullptr) invalid(fmt::format("dataset /{} is missing ({} has it)", name, because));
    expect_dtype(name, *t, dtype);
    expect_shape(name, *t, shape, because);
    return *t;
  }
  int64_t require_integer(const std::string& name) const {
    std::optional<int64_t> v = integer(name);
    if (!v) invalid(fmt::format("integer attribute '{}' is missing", name));
    return *v;
  }
  // An integer attribute in [lo, hi], or `fallback` when absent (files written before it existed).
  int64_t integer_in(const std::string& name, int64_t lo, int64_t hi, std::optional<int64_t> fallback) const {
    std::optional<int64_t> v = integer(name);
    if (!v && !fallback) invalid(fmt::format("integer attribute '{}' is missing", name));
    const int64_t x = v ? *v : *fallback;
    if (x < lo || x > hi) invalid(fmt::format("attribute '{}' = {} is outside [{}, {}]", name, x, lo, hi));
    return x;
  }
};

}  // namespace dp
