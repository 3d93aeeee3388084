#define KERNEL_NS avx512vnni
#define KERNEL_ISA "avx512vnni"
#include "kernels_impl.inc"
namespace tessera { const KernelTable& kernels_avx512vnni() { return avx512vnni::table; } }
