#define KERNEL_NS avx512
#define KERNEL_ISA "avx512"
#include "kernels_impl.inc"
namespace tessera { const KernelTable& kernels_avx512() { return avx512::table; } }
