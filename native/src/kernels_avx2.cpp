#define KERNEL_NS avx2
#define KERNEL_ISA "avx2"
#include "kernels_impl.inc"
namespace tessera { const KernelTable& kernels_avx2() { return avx2::table; } }
