/*
 * TokenForge's Solana program header: what a program compiled by stock `clang -target bpf`
 * needs to run in the Solana runtime (SBPFv0, the BPF loaders' serialised input).
 *
 * - integer types and byte helpers (no libc: -ffreestanding -fno-builtin);
 * - the syscalls TokenForge uses, declared as undefined functions: the post-linker
 *   (scripts/sbpf_link.py) turns each call into the relocation the loader resolves by the
 *   murmur3 hash of its name;
 * - the loader's input (accounts, instruction data, program id) deserialised in place;
 * - cross-program invocation structs (sol_invoke_signed_c's C ABI);
 * - 64x64->128 multiply and 128/64 divide (the BPF backend has no __int128).
 *
 * Nothing here is mutable global state: the loader refuses .data and .bss.
 */
#ifndef TF_SBF_H
#define TF_SBF_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed long long i64;
typedef _Bool bool;
#define true 1
#define false 0
#define NULL ((void *)0)
/* each instruction handler gets its own 512-byte frame: keep clang from merging them */
#define TF_HANDLER static __attribute__((noinline)) u64

#define TF_PUBKEY_LEN 32
/* stock BPF frames are 512 bytes, so the input keeps one pointer per account */
#define TF_MAX_ACCOUNTS 24
/* the loader leaves this much room after each account's data for growth (realloc) */
#define TF_REALLOC_PADDING 10240
#define TF_NON_DUP_MARKER 0xff

/* A custom program error: the runtime reports Custom(code). 0 is success. */
#define TF_SUCCESS 0ULL
#define TF_ERROR(code) ((u64)(code))

typedef struct {
    u8 x[TF_PUBKEY_LEN];
} TfPubkey;

/* The loader's input, deserialised in place: `accounts[i]` points at account i's record
 * in the input buffer (read it with the tf_acc_* accessors; writes go to the chain). */
typedef struct {
    u8 *accounts[TF_MAX_ACCOUNTS];
    u64 account_count;
    const u8 *data;
    u64 data_len;
    const TfPubkey *program_id;
} TfInput;

/* An account as sol_invoke_signed_c takes it (SolAccountInfo's C layout). */
typedef struct {
    TfPubkey *key;
    u64 *lamports;
    u64 data_len;
    u8 *data;
    TfPubkey *owner;
    u64 rent_epoch;
    bool is_signer;
    bool is_writable;
    bool executable;
} TfAccount;

/* sol_invoke_signed_c's structs */
typedef struct {
    TfPubkey *pubkey;
    bool is_writable;
    bool is_signer;
} TfAccountMeta;

typedef struct {
    TfPubkey *program_id;
    TfAccountMeta *accounts;
    u64 account_len;
    u8 *data;
    u64 data_len;
} TfInstruction;

typedef struct {
    const u8 *addr;
    u64 len;
} TfSeed;

typedef struct {
    const TfSeed *addr;
    u64 len;
} TfSeeds;

/* ------------------------------------------------------------------ syscalls */

void sol_log_(const char *message, u64 len);
void sol_log_64_(u64 a, u64 b, u64 c, u64 d, u64 e);
u64 sol_invoke_signed_c(const TfInstruction *instruction, const TfAccount *accounts, int account_count,
                        const TfSeeds *signers, int signer_count);
u64 sol_create_program_address(const TfSeed *seeds, u64 seed_count, const TfPubkey *program_id,
                               TfPubkey *address);
u64 sol_try_find_program_address(const TfSeed *seeds, u64 seed_count, const TfPubkey *program_id,
                                 TfPubkey *address, u8 *bump);
void sol_set_return_data(const u8 *data, u64 len);
void sol_log_data(const TfSeed *fields, u64 count);
u64 sol_get_clock_sysvar(void *clock);
u64 sol_get_rent_sysvar(void *rent);

#define tf_log(literal) sol_log_(literal, sizeof(literal) - 1)

/* ------------------------------------------------------------------ bytes */

static inline void tf_copy(void *dst, const void *src, u64 n) {
    u8 *d = (u8 *)dst;
    const u8 *s = (const u8 *)src;
    for (u64 i = 0; i < n; i++) d[i] = s[i];
}

static inline void tf_zero(void *dst, u64 n) {
    u8 *d = (u8 *)dst;
    for (u64 i = 0; i < n; i++) d[i] = 0;
}

static inline bool tf_key_eq(const TfPubkey *a, const TfPubkey *b) {
    const u64 *x = (const u64 *)a->x;
    const u64 *y = (const u64 *)b->x;
    return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* little-endian reads and writes of unaligned fields */
static inline u64 tf_read_u64(const u8 *p) {
    u64 v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static inline void tf_write_u64(u8 *p, u64 v) {
    for (int i = 0; i < 8; i++) p[i] = (u8)(v >> (8 * i));
}

/* ------------------------------------------------------------------ input */

/* An account record of the input (the aligned layout of the BPF loaders), from its first
 * byte: the duplicate marker, is_signer, is_writable, executable, 4 bytes of padding, key,
 * owner, lamports, data length, data, TF_REALLOC_PADDING, alignment to 8, rent epoch. */
static inline bool tf_acc_signer(const u8 *a) { return a[1] != 0; }
static inline bool tf_acc_writable(const u8 *a) { return a[2] != 0; }
static inline bool tf_acc_executable(const u8 *a) { return a[3] != 0; }
static inline TfPubkey *tf_acc_key(u8 *a) { return (TfPubkey *)(a + 8); }
static inline TfPubkey *tf_acc_owner(u8 *a) { return (TfPubkey *)(a + 40); }
static inline u64 *tf_acc_lamports(u8 *a) { return (u64 *)(a + 72); }
static inline u64 tf_acc_data_len(const u8 *a) { return *(const u64 *)(a + 80); }
static inline u8 *tf_acc_data(u8 *a) { return a + 88; }
static inline u8 *tf_acc_end(u8 *a) {
    u64 p = (u64)(a + 88 + tf_acc_data_len(a) + TF_REALLOC_PADDING);
    return (u8 *)((p + 7) & ~7ULL) + sizeof(u64); /* past the rent epoch */
}

/* account `a` as sol_invoke_signed_c takes it */
static inline void tf_account_info(u8 *a, TfAccount *out) {
    out->key = tf_acc_key(a);
    out->lamports = tf_acc_lamports(a);
    out->data_len = tf_acc_data_len(a);
    out->data = tf_acc_data(a);
    out->owner = tf_acc_owner(a);
    out->rent_epoch = *(u64 *)(tf_acc_end(a) - sizeof(u64));
    out->is_signer = tf_acc_signer(a);
    out->is_writable = tf_acc_writable(a);
    out->executable = tf_acc_executable(a);
}

/* Deserialises the loader's input: u64 count, the account records (a duplicate is its
 * marker — the index of the first occurrence — and 7 bytes of padding), then the
 * instruction data (u64 length, bytes) and the program id. False when there are more than
 * TF_MAX_ACCOUNTS accounts. */
static bool tf_deserialize(u8 *input, TfInput *out) {
    u64 count = *(u64 *)input;
    input += sizeof(u64);
    if (count > TF_MAX_ACCOUNTS) return false;
    out->account_count = count;
    for (u64 i = 0; i < count; i++) {
        u8 dup = *input;
        if (dup != TF_NON_DUP_MARKER) {
            if (dup >= i) return false;
            out->accounts[i] = out->accounts[dup];
            input += 8;
            continue;
        }
        out->accounts[i] = input;
        input = tf_acc_end(input);
    }
    out->data_len = *(u64 *)input;
    input += sizeof(u64);
    out->data = input;
    input += out->data_len;
    out->program_id = (const TfPubkey *)input;
    return true;
}

/* ------------------------------------------------------------------ u128 */

typedef struct {
    u64 hi;
    u64 lo;
} u128;

static inline u128 u128_mul(u64 a, u64 b) {
    u64 a_lo = a & 0xffffffffULL, a_hi = a >> 32;
    u64 b_lo = b & 0xffffffffULL, b_hi = b >> 32;
    u64 lo_lo = a_lo * b_lo;
    u64 hi_lo = a_hi * b_lo;
    u64 lo_hi = a_lo * b_hi;
    u64 hi_hi = a_hi * b_hi;
    u64 cross = (lo_lo >> 32) + (hi_lo & 0xffffffffULL) + lo_hi;
    u128 r;
    r.hi = hi_hi + (hi_lo >> 32) + (cross >> 32);
    r.lo = (cross << 32) | (lo_lo & 0xffffffffULL);
    return r;
}

/* n / d for d != 0 into *q and *r; false (and nothing written) when the quotient does
 * not fit 64 bits (n.hi >= d). */
static inline bool u128_divmod64(u128 n, u64 d, u64 *q, u64 *r) {
    if (n.hi >= d) return false;
    if (n.hi == 0) {
        *q = n.lo / d;
        *r = n.lo % d;
        return true;
    }
    u64 rem = n.hi, quot = 0;
    for (int i = 63; i >= 0; i--) { /* restoring division, one quotient bit a round */
        u64 carry = rem >> 63;
        rem = (rem << 1) | ((n.lo >> i) & 1);
        quot <<= 1;
        if (carry || rem >= d) {
            rem -= d;
            quot |= 1;
        }
    }
    *q = quot;
    *r = rem;
    return true;
}

/* n / d (d != 0); *overflow set when the quotient does not fit 64 bits. */
static inline u64 u128_div64(u128 n, u64 d, bool *overflow) {
    u64 q = 0, r = 0;
    *overflow = !u128_divmod64(n, d, &q, &r);
    return q;
}

/* floor(a * b / d) and ceil(a * b / d) in 128 bits; false when d is 0 or it overflows u64 */
static inline bool tf_mul_div(u64 a, u64 b, u64 d, u64 *out) {
    u64 r;
    return d != 0 && u128_divmod64(u128_mul(a, b), d, out, &r);
}

static inline bool tf_mul_div_ceil(u64 a, u64 b, u64 d, u64 *out) {
    u64 q, r;
    if (d == 0 || !u128_divmod64(u128_mul(a, b), d, &q, &r)) return false;
    if (r != 0) {
        if (q == ~0ULL) return false;
        q += 1;
    }
    *out = q;
    return true;
}

/* ------------------------------------------------------------------ sysvars */

typedef struct {
    u64 slot;
    i64 epoch_start_timestamp;
    u64 epoch;
    u64 leader_schedule_epoch;
    i64 unix_timestamp;
} TfClock;

#endif
