/*
 * bcryptprimitives.dll for Wine 8, test-only.
 *
 * Every Windows binary built by Rust 1.78 or later takes its random bytes
 * from ProcessPrng in bcryptprimitives.dll. Debian's Wine 8 has no such
 * DLL, so those binaries exit at once (status 53) under it. This stand-in
 * exports ProcessPrng on top of advapi32's RtlGenRandom (SystemFunction036),
 * which Wine has. scripts/wine-run builds it with mingw and copies it into
 * the Wine prefix; it is never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
