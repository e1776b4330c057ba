// Run-time kernel selection (house rule 7). Every ISA build of the kernels compiled into the binary
// registers a table; the best one the CPU supports is chosen once, at first use. EDGEGLM_ISA=<name>
// in the environment (or force_isa) selects a lower one, for testing and comparison.
//
// A table need not cover every weight format: for a format it lacks, the next lower table that has
// it is used (ending at generic, the scalar twin of everything). `format_path` says who serves what.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "kernels/qacts.h"

namespace edgeglm::kernels {

// Integer formats: rows [r0, r1) of a weight matrix (row r at w + r * row_bytes) against every
// row of the quantized activations; y[t * ldy + r] = dot(row r, activation row t).
using GemmQ = void (*)(const void* w, size_t row_bytes, const QActs& a, float* y, int64_t ldy,
                       int64_t r0, int64_t r1);
// Float formats (and the dequantizing fallback): same contract with float activations x
// (n_tok rows of n_in).
using GemmF = void (*)(DType t, const void* w, size_t row_bytes, const float* x, int64_t n_in,
                       int64_t n_tok, float* y, int64_t ldy, int64_t r0, int64_t r1);
using QuantizeActs = void (*)(const float* x, int64_t n, int8_t* q, float* d, int32_t* s);

struct FormatKernels {
  GemmQ q = nullptr;  // set for formats computed with int8 activations
  GemmF f = nullptr;  // set for formats computed with float activations
};

struct KernelTable {
  const char* name;  // "generic", "avx2", "avx512", "neon", "dotprod"
  FormatKernels (*format)(DType t);  // what this table implements itself for t
  QuantizeActs quantize_acts;        // nullptr: the next lower table's
  float (*dot_f32)(const float* a, const float* b, int64_t n);
};

// Tables compiled in and usable on this CPU, lowest (generic) first, best last.
std::vector<const KernelTable*> available_isas();
const KernelTable& active_isa();
Status force_isa(std::string_view name);  // error names the choices

// The kernels `table` (or the tables below it) provide for t, and the name of the table that
// provides them; both members null if nothing can compute t.
struct ResolvedFormat {
  FormatKernels k;
  const char* isa = nullptr;
};
// Float-activation mode (EDGEGLM_FLOAT_ACTS=1, or set here): integer weight formats are decoded
// and multiplied with float activations, as the reference implementations do. Slower; for checking
// how much the int8 activations of the default path cost on a given model.
void set_float_activations(bool on);
bool float_activations();

ResolvedFormat resolve_format(const KernelTable& table, DType t);
QuantizeActs resolve_quantize_acts(const KernelTable& table);

}  // namespace edgeglm::kernels
