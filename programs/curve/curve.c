/*
 * TokenForge's bonding-curve program for Solana: pump.fun's curve over virtual reserves,
 * the same integer math as src/tokenforge/domain/curve.py and TokenForgeCurve.sol.
 *
 * Accounts it owns (the first byte is the kind, the second the layout version):
 *   config ["config"]      the platform's terms: admin, fee recipient, fee bps and bounds,
 *                          virtual native reserve, migration fee (CONFIG_* offsets)
 *   curve  ["curve", mint] one per mint: terms copied from the config at creation, reserves,
 *                          the creator's unclaimed fees; its lamports are the native reserve
 *                          (rent + native raised + creator fees). The tokens for sale sit in
 *                          a Token-2022 account owned by the curve PDA (the vault).
 *
 * Instructions (first byte; little-endian fields):
 *   0 init_config  [admin (s, w), config (w), system]        terms (CONFIG_TERMS_LEN bytes)
 *   1 set_config   [admin (s), config (w)]                    new admin (32) + terms
 *   2 create_curve [payer (s, w), creator, mint, curve (w), vault, config, system]
 *                  u16 launch_fee_bps, u32 launch_window, u8 window_in_slots
 *   3 buy          [buyer (s, w), curve (w), vault (w), buyer token (w), mint, fee recipient (w),
 *                   token program, system]                    u64 native_in, u64 min_tokens_out, i64 deadline
 *   4 sell         [seller (s, w), curve (w), vault (w), seller token (w), mint, fee recipient (w),
 *                   token program]                            u64 tokens_in, u64 min_native_out, i64 deadline
 *   5 claim        [creator (s, w), curve (w)]                the creator's accrued fees
 *   6 graduate     [payer (s, w), curve (w), curve vault (w), mint, pool (w), pool vault (w),
 *                   lp mint (w), lp account (w), fee recipient (w), token program, system]
 *                  a sold-out curve's native reserve (minus the migration fee, to the fee
 *                  recipient) and its remaining tokens become the pool's liquidity; the
 *                  LP tokens are minted and burnt at once
 *   7 swap         [trader (s, w), pool (w), pool vault (w), trader token (w), mint,
 *                   token program, system]                    u8 is_buy, u64 amount_in, u64 min_out, i64 deadline
 *
 *   pool   ["pool", mint]   the graduated token's constant-product pool (POOL_* offsets):
 *                           its lamports hold the native reserve (plus rent), its vault
 *                           ["pool" PDA's token account] the tokens; a swap pays
 *                           POOL_FEE_BPS of its input into the pool. LP mint ["lp", mint]
 *                           and LP account ["lp-account", mint] are created at graduation.
 *
 * Events are `sol_log_data` records whose first field is a 4-byte tag with the layout's
 * version ("TFc1" created, "TFt1" trade, "TFd1" sold out, "TFf1" fees claimed, "TFg1"
 * graduated, "TFs1" pool swap); see
 * emit_* below. A deadline of 0 means none. Errors are Custom(code), ERR_* below.
 */
#include "../include/tf_cpi.h"

#define ERR_BAD_INPUT 1
#define ERR_NOT_SIGNER 2
#define ERR_NOT_WRITABLE 3
#define ERR_WRONG_ACCOUNT 4
#define ERR_WRONG_OWNER 5
#define ERR_ALREADY_INITIALIZED 6
#define ERR_BAD_TERMS 7
#define ERR_CURVE_COMPLETE 8
#define ERR_ZERO_AMOUNT 9
#define ERR_SLIPPAGE 10
#define ERR_EXPIRED 11
#define ERR_INSUFFICIENT_RESERVE 12
#define ERR_OVERFLOW 13
#define ERR_BAD_MINT 14
#define ERR_NOT_CREATOR 15
#define ERR_NOTHING_TO_CLAIM 16
#define ERR_NOT_COMPLETE 17
#define ERR_ALREADY_GRADUATED 18

#define KIND_CONFIG 1
#define KIND_CURVE 2
#define LAYOUT_VERSION 1
#define STATE_TRADING 0
#define STATE_COMPLETE 1
#define STATE_GRADUATED 2
#define KIND_POOL 3
#define POOL_FEE_BPS 25

#define BPS 10000ULL
#define MAX_PLATFORM_FEE_BPS 500
#define MAX_CREATOR_FEE_BPS 500
#define MAX_LAUNCH_FEE_BPS 9900
#define MAX_LAUNCH_WINDOW_S 3600
#define MAX_LAUNCH_WINDOW_SLOTS 300

/* config: kind, version, bump, pad[5], admin, fee recipient, then the terms */
#define CONFIG_ADMIN 8
#define CONFIG_TERMS 40
/* terms: fee recipient 32, u64 virtual_native0, u64 migration_fee, u16 platform_fee_bps,
 * u16 creator_fee_bps, u16 max_launch_fee_bps, u32 max_window_s, u32 max_window_slots */
#define CONFIG_TERMS_LEN (32 + 8 + 8 + 2 + 2 + 2 + 4 + 4)
#define CONFIG_LEN (CONFIG_TERMS + CONFIG_TERMS_LEN)

/* curve */
#define CURVE_STATE 2
#define CURVE_BUMP 3
#define CURVE_IN_SLOTS 4
#define CURVE_DECIMALS 5
#define CURVE_MINT 8
#define CURVE_CREATOR 40
#define CURVE_VAULT 72
#define CURVE_FEE_RECIPIENT 104
#define CURVE_SUPPLY 136
#define CURVE_VN0 144
#define CURVE_RAISED 152
#define CURVE_SOLD 160
#define CURVE_CREATOR_FEES 168
#define CURVE_MIGRATION_FEE 176
#define CURVE_LAUNCHED_AT 184
#define CURVE_WINDOW 192
#define CURVE_PLATFORM_BPS 196
#define CURVE_CREATOR_BPS 198
#define CURVE_LAUNCH_BPS 200
#define CURVE_LEN 208

/* pool */
#define POOL_BUMP 2
#define POOL_DECIMALS 4
#define POOL_MINT 8
#define POOL_VAULT 40
#define POOL_LP_MINT 72
#define POOL_NATIVE 104
#define POOL_TOKENS 112
#define POOL_LP_BURNT 120
#define POOL_FEE 128
#define POOL_LEN 136
#define TOKEN_ACCOUNT_LEN 165

/* SPL token layouts (Token-2022 keeps them, extensions follow at 165) */
#define MINT_AUTHORITY_TAG 0
#define MINT_SUPPLY 36
#define MINT_DECIMALS 44
#define MINT_INITIALIZED 45
#define MINT_FREEZE_TAG 46
#define MINT_BASE_LEN 82
#define TOKEN_MINT 0
#define TOKEN_OWNER 32
#define TOKEN_AMOUNT 64
#define TOKEN_DELEGATE_TAG 72
#define TOKEN_STATE 108
#define TOKEN_CLOSE_TAG 129
#define EXTENSIONS_AT 165
#define EXT_METADATA_POINTER 18
#define EXT_TOKEN_METADATA 19

static const u8 SEED_CONFIG[6] = {'c', 'o', 'n', 'f', 'i', 'g'};
static const u8 SEED_CURVE[5] = {'c', 'u', 'r', 'v', 'e'};
static const u8 SEED_POOL[4] = {'p', 'o', 'o', 'l'};
static const u8 SEED_LP[2] = {'l', 'p'};
static const u8 SEED_LP_ACCOUNT[10] = {'l', 'p', '-', 'a', 'c', 'c', 'o', 'u', 'n', 't'};

static inline u16 rd16(const u8 *p) { return (u16)(p[0] | (p[1] << 8)); }
static inline u32 rd32(const u8 *p) { return (u32)p[0] | ((u32)p[1] << 8) | ((u32)p[2] << 16) | ((u32)p[3] << 24); }
static inline void wr16(u8 *p, u16 v) { p[0] = (u8)v, p[1] = (u8)(v >> 8); }
static inline void wr32(u8 *p, u32 v) {
    for (int i = 0; i < 4; i++) p[i] = (u8)(v >> (8 * i));
}
static inline u64 rd64(const u8 *p) { return tf_read_u64(p); }

/* ------------------------------------------------------------------ account checks */

static bool owned_by(u8 *account, const TfPubkey *program) { return tf_key_eq(tf_acc_owner(account), program); }

/* `account` is this program's account of `kind` (owner, kind, version, length) */
static bool is_ours(const TfInput *in, u8 *account, u8 kind, u64 len) {
    return owned_by(account, in->program_id) && tf_acc_data_len(account) >= len && tf_acc_data(account)[0] == kind &&
           tf_acc_data(account)[1] == LAYOUT_VERSION;
}

/* The rent-exempt minimum of an account of `space` bytes, as the runtime computes it:
 * (128 + space) * lamports_per_byte_year * exemption_threshold. The threshold is an f64
 * (2.0 with 3,480 lamports a byte-year, or 1.0 with 6,960 since SIMD-0194); BPF has no
 * floats, so it is applied from its bits: (2^52 + mantissa) * 2^(exponent - 1075). */
static u64 rent_exempt(u64 space) {
    u8 rent[24]; /* u64 lamports_per_byte_year, f64 exemption_threshold, u8 burn_percent */
    if (sol_get_rent_sysvar(rent) != 0) return 0;
    u64 bits = rd64(rent + 8), exponent = (bits >> 52) & 0x7ff, mantissa = bits & ((1ULL << 52) - 1);
    if (exponent < 1023 || exponent > 1075) return 0; /* a threshold below 1 or absurd: refuse to guess */
    u128 product = u128_mul((128 + space) * rd64(rent), (1ULL << 52) | mantissa);
    u64 shift = 1075 - exponent;
    return shift == 0 ? product.lo : (product.lo >> shift) | (product.hi << (64 - shift));
}

static bool now(TfClock *clock) { return sol_get_clock_sysvar(clock) == 0; }

/* ------------------------------------------------------------------ config */

/* terms are within the platform bounds */
static bool terms_valid(const u8 *t) {
    u16 pf = rd16(t + 48), cf = rd16(t + 50), lf = rd16(t + 52);
    return pf <= MAX_PLATFORM_FEE_BPS && cf <= MAX_CREATOR_FEE_BPS && lf <= MAX_LAUNCH_FEE_BPS && rd64(t + 32) > 0 &&
           rd32(t + 54) <= MAX_LAUNCH_WINDOW_S && rd32(t + 58) <= MAX_LAUNCH_WINDOW_SLOTS;
}

TF_HANDLER init_config(TfInput *in) {
    if (in->account_count < 3 || in->data_len != 1 + CONFIG_TERMS_LEN) return TF_ERROR(ERR_BAD_INPUT);
    u8 *admin = in->accounts[0], *config = in->accounts[1], *system = in->accounts[2];
    if (!tf_acc_signer(admin)) return TF_ERROR(ERR_NOT_SIGNER);
    if (!tf_acc_writable(config)) return TF_ERROR(ERR_NOT_WRITABLE);
    if (!tf_key_eq(tf_acc_key(system), &TF_SYSTEM_PROGRAM)) return TF_ERROR(ERR_WRONG_ACCOUNT);
    if (!terms_valid(in->data + 1)) return TF_ERROR(ERR_BAD_TERMS);
    TfSeed seeds[2] = {{SEED_CONFIG, sizeof(SEED_CONFIG)}, {NULL, 0}};
    TfPubkey expected;
    u8 bump;
    if (sol_try_find_program_address(seeds, 1, in->program_id, &expected, &bump) != 0 ||
        !tf_key_eq(&expected, tf_acc_key(config)))
        return TF_ERROR(ERR_WRONG_ACCOUNT);
    if (owned_by(config, in->program_id)) return TF_ERROR(ERR_ALREADY_INITIALIZED);
    u8 bump_seed[1] = {bump};
    seeds[1].addr = bump_seed;
    seeds[1].len = 1;
    TfSeeds signer = {seeds, 2};
    TfCreatePda create = {admin, config, system, CONFIG_LEN, rent_exempt(CONFIG_LEN), in->program_id, &signer};
    u64 result = tf_create_pda_account(&create);
    if (result != 0) return result;
    u8 *d = tf_acc_data(config);
    d[0] = KIND_CONFIG;
    d[1] = LAYOUT_VERSION;
    d[2] = bump;
    tf_copy(d + CONFIG_ADMIN, tf_acc_key(admin)->x, TF_PUBKEY_LEN);
    tf_copy(d + CONFIG_TERMS, in->data + 1, CONFIG_TERMS_LEN);
    return TF_SUCCESS;
}

TF_HANDLER set_config(TfInput *in) {
    if (in->account_count < 2 || in->data_len != 1 + 32 + CONFIG_TERMS_LEN) return TF_ERROR(ERR_BAD_INPUT);
    u8 *admin = in->accounts[0], *config = in->accounts[1];
    if (!tf_acc_signer(admin)) return TF_ERROR(ERR_NOT_SIGNER);
    if (!is_ours(in, config, KIND_CONFIG, CONFIG_LEN)) return TF_ERROR(ERR_WRONG_ACCOUNT);
    if (!tf_acc_writable(config)) return TF_ERROR(ERR_NOT_WRITABLE);
    u8 *d = tf_acc_data(config);
    if (!tf_key_eq((TfPubkey *)(d + CONFIG_ADMIN), tf_acc_key(admin))) return TF_ERROR(ERR_WRONG_ACCOUNT);
    if (!terms_valid(in->data + 33)) return TF_ERROR(ERR_BAD_TERMS);
    tf_copy(d + CONFIG_ADMIN, in->data + 1, TF_PUBKEY_LEN);
    tf_copy(d + CONFIG_TERMS, in->data + 33, CONFIG_TERMS_LEN);
    return TF_SUCCESS;
}

/* ------------------------------------------------------------------ create */

/* A mint TokenForge can trust with a curve: Token-2022, initialised, no mint or freeze
 * authority left, and no extension but the metadata pointer and the metadata itself (a
 * permanent delegate, transfer hook, transfer fee or default frozen state could take or
 * lock the curve's tokens). */
static bool mint_ok(u8 *mint) {
    if (!owned_by(mint, &TF_TOKEN_2022_PROGRAM)) return false;
    u64 len = tf_acc_data_len(mint);
    u8 *d = tf_acc_data(mint);
    if (len < MINT_BASE_LEN || d[MINT_INITIALIZED] != 1 || rd32(d + MINT_AUTHORITY_TAG) != 0 ||
        rd32(d + MINT_FREEZE_TAG) != 0)
        return false;
    if (len == MINT_BASE_LEN) return true;
    if (len < EXTENSIONS_AT + 1 || d[EXTENSIONS_AT] != 1) return false; /* account type 1: a mint */
    u64 at = EXTENSIONS_AT + 1;
    while (at + 4 <= len) {
        u16 type = rd16(d + at), size = rd16(d + at + 2);
        if (type == 0) break; /* uninitialised tail */
        if (type != EXT_METADATA_POINTER && type != EXT_TOKEN_METADATA) return false;
        at += 4 + (u64)size;
    }
    return at <= len;
}

/* The vault: a Token-2022 account of `mint` owned by the curve PDA, holding the whole
 * supply, with no delegate, no close authority, initialised and not frozen. */
static bool vault_ok(u8 *vault, const TfPubkey *mint, const TfPubkey *curve, u64 supply) {
    if (!owned_by(vault, &TF_TOKEN_2022_PROGRAM) || tf_acc_data_len(vault) < 165) return false;
    u8 *d = tf_acc_data(vault);
    return tf_key_eq((TfPubkey *)(d + TOKEN_MINT), mint) && tf_key_eq((TfPubkey *)(d + TOKEN_OWNER), curve) &&
           rd64(d + TOKEN_AMOUNT) == supply && rd32(d + TOKEN_DELEGATE_TAG) == 0 && d[TOKEN_STATE] == 1 &&
           rd32(d + TOKEN_CLOSE_TAG) == 0;
}

/* "TFc1" | mint | creator | state, bump, window_in_slots, decimals (4) | the curve from
 * CURVE_SUPPLY to CURVE_LEN (72: supply, virtual native, raised, sold, creator fees,
 * migration fee, launched at, u32 window, u16 platform, creator and launch bps, pad) */
static __attribute__((noinline)) void emit_created(u8 *curve) {
    u8 *d = tf_acc_data(curve);
    TfSeed fields[5] = {{(const u8 *)"TFc1", 4}, {d + CURVE_MINT, 32}, {d + CURVE_CREATOR, 32}, {d + CURVE_STATE, 4},
                        {d + CURVE_SUPPLY, 72}};
    sol_log_data(fields, 5);
}

TF_HANDLER create_curve(TfInput *in) {
    if (in->account_count < 7 || in->data_len != 1 + 2 + 4 + 1) return TF_ERROR(ERR_BAD_INPUT);
    u8 *payer = in->accounts[0], *creator = in->accounts[1], *mint = in->accounts[2], *curve = in->accounts[3];
    u8 *vault = in->accounts[4], *config = in->accounts[5], *system = in->accounts[6];
    if (!tf_acc_signer(payer)) return TF_ERROR(ERR_NOT_SIGNER);
    if (!tf_acc_writable(curve)) return TF_ERROR(ERR_NOT_WRITABLE);
    if (!is_ours(in, config, KIND_CONFIG, CONFIG_LEN) || !tf_key_eq(tf_acc_key(system), &TF_SYSTEM_PROGRAM))
        return TF_ERROR(ERR_WRONG_ACCOUNT);
    if (!mint_ok(mint)) return TF_ERROR(ERR_BAD_MINT);
    u8 *terms = tf_acc_data(config) + CONFIG_TERMS;
    u16 launch_bps = rd16(in->data + 1);
    u32 window = rd32(in->data + 3);
    u8 in_slots = in->data[7];
    u16 base = rd16(terms + 48) + rd16(terms + 50);
    if (in_slots > 1) return TF_ERROR(ERR_BAD_INPUT);
    if (window != 0 || launch_bps != 0) { /* the launch fee: within the platform's bounds */
        u32 limit = in_slots ? rd32(terms + 58) : rd32(terms + 54);
        if (window == 0 || window > limit || launch_bps <= base || launch_bps > rd16(terms + 52))
            return TF_ERROR(ERR_BAD_TERMS);
    }
    u64 supply = rd64(tf_acc_data(mint) + MINT_SUPPLY);
    u64 vt0, for_sale;
    /* the virtual reserve must fit u64, and something must be for sale */
    if (!tf_mul_div(supply, 1073, 1000, &vt0) || !tf_mul_div(supply, 7931, 10000, &for_sale) || for_sale == 0)
        return TF_ERROR(ERR_BAD_MINT);
    TfSeed seeds[3] = {{SEED_CURVE, sizeof(SEED_CURVE)}, {tf_acc_key(mint)->x, TF_PUBKEY_LEN}, {NULL, 0}};
    TfPubkey expected;
    u8 bump;
    if (sol_try_find_program_address(seeds, 2, in->program_id, &expected, &bump) != 0 ||
        !tf_key_eq(&expected, tf_acc_key(curve)))
        return TF_ERROR(ERR_WRONG_ACCOUNT);
    if (owned_by(curve, in->program_id)) return TF_ERROR(ERR_ALREADY_INITIALIZED);
    if (!vault_ok(vault, tf_acc_key(mint), tf_acc_key(curve), supply)) return TF_ERROR(ERR_WRONG_ACCOUNT);
    TfClock clock;
    if (!now(&clock)) return TF_ERROR(ERR_BAD_INPUT);
    u8 bump_seed[1] = {bump};
    seeds[2].addr = bump_seed;
    seeds[2].len = 1;
    TfSeeds signer = {seeds, 3};
    TfCreatePda create = {payer, curve, system, CURVE_LEN, rent_exempt(CURVE_LEN), in->program_id, &signer};
    u64 result = tf_create_pda_account(&create);
    if (result != 0) return result;
    u8 *d = tf_acc_data(curve);
    d[0] = KIND_CURVE;
    d[1] = LAYOUT_VERSION;
    d[CURVE_STATE] = STATE_TRADING;
    d[CURVE_BUMP] = bump;
    d[CURVE_IN_SLOTS] = in_slots;
    d[CURVE_DECIMALS] = tf_acc_data(mint)[MINT_DECIMALS];
    tf_copy(d + CURVE_MINT, tf_acc_key(mint)->x, 32);
    tf_copy(d + CURVE_CREATOR, tf_acc_key(creator)->x, 32);
    tf_copy(d + CURVE_VAULT, tf_acc_key(vault)->x, 32);
    tf_copy(d + CURVE_FEE_RECIPIENT, terms, 32);
    tf_write_u64(d + CURVE_SUPPLY, supply);
    tf_copy(d + CURVE_VN0, terms + 32, 8);
    tf_copy(d + CURVE_MIGRATION_FEE, terms + 40, 8);
    tf_write_u64(d + CURVE_LAUNCHED_AT, in_slots ? clock.slot : (u64)clock.unix_timestamp);
    wr32(d + CURVE_WINDOW, window);
    tf_copy(d + CURVE_PLATFORM_BPS, terms + 48, 4); /* platform and creator bps */
    wr16(d + CURVE_LAUNCH_BPS, launch_bps);
    emit_created(curve);
    return TF_SUCCESS;
}

/* ------------------------------------------------------------------ trading */

typedef struct {
    u64 vq, vt, left, fee_bps, base_bps, creator_bps;
} Terms;

/* the curve's reserves and the fee at this moment (domain/curve.py CurveParams.fee_bps) */
static __attribute__((noinline)) bool read_terms(u8 *d, const TfClock *clock, Terms *t) {
    u64 supply = rd64(d + CURVE_SUPPLY), sold = rd64(d + CURVE_SOLD), vt0, for_sale;
    if (!tf_mul_div(supply, 1073, 1000, &vt0) || !tf_mul_div(supply, 7931, 10000, &for_sale)) return false;
    t->vq = rd64(d + CURVE_VN0) + rd64(d + CURVE_RAISED);
    t->vt = vt0 - sold;
    t->left = for_sale - sold;
    t->creator_bps = rd16(d + CURVE_CREATOR_BPS);
    t->base_bps = rd16(d + CURVE_PLATFORM_BPS) + t->creator_bps;
    t->fee_bps = t->base_bps;
    u64 window = rd32(d + CURVE_WINDOW), launch = rd16(d + CURVE_LAUNCH_BPS);
    if (window != 0 && launch > t->base_bps) {
        u64 at = d[CURVE_IN_SLOTS] ? clock->slot : (u64)clock->unix_timestamp;
        u64 start = rd64(d + CURVE_LAUNCHED_AT);
        u64 elapsed = at > start ? at - start : 0;
        if (elapsed < window) {
            u64 extra;
            tf_mul_div_ceil(launch - t->base_bps, window - elapsed, window, &extra);
            t->fee_bps += extra;
        }
    }
    return true;
}

typedef struct {
    u8 is_buy;
    u64 native, tokens, fee;
} TradeEvent;

/* "TFt1" | mint | trader | is_buy u8, native, tokens, fee, virtual native, virtual token (u64s, after) */
static __attribute__((noinline)) void emit_trade(u8 *curve, u8 *trader, const TradeEvent *e, const Terms *after) {
    u8 body[1 + 8 * 5];
    body[0] = e->is_buy;
    tf_write_u64(body + 1, e->native);
    tf_write_u64(body + 9, e->tokens);
    tf_write_u64(body + 17, e->fee);
    tf_write_u64(body + 25, after->vq);
    tf_write_u64(body + 33, after->vt);
    TfSeed fields[4] = {{(const u8 *)"TFt1", 4}, {tf_acc_data(curve) + CURVE_MINT, 32}, {tf_acc_key(trader)->x, 32},
                        {body, sizeof(body)}};
    sol_log_data(fields, 4);
}

/* the accounts every trade shares */
typedef struct {
    u8 *trader, *curve, *vault, *mint, *recipient, *token_program;
} TradeAccounts;

/* checked: the trader signs, the curve is ours and trading, the vault, mint and fee
 * recipient are the curve's, the token program is Token-2022 */
static __attribute__((noinline)) u64 check_trade(const TfInput *in, const TradeAccounts *a) {
    if (!tf_acc_signer(a->trader)) return TF_ERROR(ERR_NOT_SIGNER);
    if (!tf_acc_writable(a->trader) || !tf_acc_writable(a->curve) || !tf_acc_writable(a->vault) ||
        !tf_acc_writable(a->recipient))
        return TF_ERROR(ERR_NOT_WRITABLE);
    if (!is_ours(in, a->curve, KIND_CURVE, CURVE_LEN)) return TF_ERROR(ERR_WRONG_ACCOUNT);
    u8 *d = tf_acc_data(a->curve);
    if (!tf_key_eq(tf_acc_key(a->vault), (TfPubkey *)(d + CURVE_VAULT)) ||
        !tf_key_eq(tf_acc_key(a->mint), (TfPubkey *)(d + CURVE_MINT)) ||
        !tf_key_eq(tf_acc_key(a->recipient), (TfPubkey *)(d + CURVE_FEE_RECIPIENT)) ||
        !tf_key_eq(tf_acc_key(a->token_program), &TF_TOKEN_2022_PROGRAM))
        return TF_ERROR(ERR_WRONG_ACCOUNT);
    if (d[CURVE_STATE] != STATE_TRADING) return TF_ERROR(ERR_CURVE_COMPLETE);
    return TF_SUCCESS;
}

/* the fee's split: creator = floor(fee * creator_bps / base), the platform the rest */
static u64 creator_share(u64 fee, const Terms *t) {
    u64 share = 0;
    if (t->base_bps != 0) tf_mul_div(fee, t->creator_bps, t->base_bps, &share);
    return share;
}

static bool expired(const TfClock *clock, i64 deadline) { return deadline != 0 && clock->unix_timestamp > deadline; }

/* what a buy of `native_in` moves (domain/curve.py buy): 0 or an error code */
typedef struct {
    u64 charged, out, net, fee;
} BuyMath;

static __attribute__((noinline)) u64 buy_math(const Terms *t, u64 native_in, BuyMath *m) {
    if (!tf_mul_div_ceil(native_in, t->fee_bps, BPS, &m->fee)) return TF_ERROR(ERR_OVERFLOW);
    m->net = native_in - m->fee;
    m->charged = native_in;
    if (t->vq + m->net < t->vq || !tf_mul_div(m->net, t->vt, t->vq + m->net, &m->out)) return TF_ERROR(ERR_OVERFLOW);
    if (m->out >= t->left) { /* the last tokens: charge only what they cost */
        m->out = t->left;
        if (!tf_mul_div_ceil(m->out, t->vq, t->vt - m->out, &m->net) ||
            !tf_mul_div_ceil(m->net, BPS, BPS - t->fee_bps, &m->charged))
            return TF_ERROR(ERR_OVERFLOW);
        if (m->charged > native_in) m->charged = native_in;
        if (m->net > m->charged) return TF_ERROR(ERR_OVERFLOW);
        m->fee = m->charged - m->net;
    }
    return m->out == 0 ? TF_ERROR(ERR_ZERO_AMOUNT) : TF_SUCCESS;
}

/* `amount` tokens from the vault to `to`, signed by the curve PDA's seeds */
static __attribute__((noinline)) u64 send_tokens(u8 *curve, const TradeAccounts *a, u8 *to, u64 amount) {
    u8 *d = tf_acc_data(curve);
    u8 bump_seed[1] = {d[CURVE_BUMP]};
    TfSeed seeds[3] = {{SEED_CURVE, sizeof(SEED_CURVE)}, {d + CURVE_MINT, 32}, {bump_seed, 1}};
    TfSeeds signer = {seeds, 3};
    TfTransfer transfer = {a->token_program, a->vault, a->mint, to, curve, amount, d[CURVE_DECIMALS], &signer};
    return tf_token_transfer(&transfer);
}

static __attribute__((noinline)) void emit_complete(u8 *curve) {
    TfSeed fields[2] = {{(const u8 *)"TFd1", 4}, {tf_acc_data(curve) + CURVE_MINT, 32}};
    sol_log_data(fields, 2);
}

TF_HANDLER buy(TfInput *in) {
    if (in->account_count < 8 || in->data_len != 1 + 24) return TF_ERROR(ERR_BAD_INPUT);
    TradeAccounts a = {in->accounts[0], in->accounts[1], in->accounts[2], in->accounts[4], in->accounts[5], in->accounts[6]};
    u8 *to = in->accounts[3], *system = in->accounts[7];
    u64 result = check_trade(in, &a);
    if (result != 0) return result;
    if (!tf_key_eq(tf_acc_key(system), &TF_SYSTEM_PROGRAM) || tf_key_eq(tf_acc_key(to), tf_acc_key(a.vault)))
        return TF_ERROR(ERR_WRONG_ACCOUNT);
    u64 native_in = rd64(in->data + 1), min_out = rd64(in->data + 9);
    TfClock clock;
    if (!now(&clock)) return TF_ERROR(ERR_BAD_INPUT);
    if (expired(&clock, (i64)rd64(in->data + 17))) return TF_ERROR(ERR_EXPIRED);
    if (native_in == 0) return TF_ERROR(ERR_ZERO_AMOUNT);
    u8 *d = tf_acc_data(a.curve);
    Terms t;
    if (!read_terms(d, &clock, &t)) return TF_ERROR(ERR_OVERFLOW);
    BuyMath m;
    if ((result = buy_math(&t, native_in, &m)) != 0) return result;
    if (m.out < min_out) return TF_ERROR(ERR_SLIPPAGE);
    u64 creator_fee = creator_share(m.fee, &t), platform_fee = m.fee - creator_fee;
    if ((result = tf_system_transfer(a.trader, a.curve, system, m.charged)) != 0) return result;
    if ((result = send_tokens(a.curve, &a, to, m.out)) != 0) return result;
    /* after the last CPI (the runtime checks balances at each): the curve owns its lamports */
    *tf_acc_lamports(a.curve) -= platform_fee;
    *tf_acc_lamports(a.recipient) += platform_fee;
    tf_write_u64(d + CURVE_RAISED, rd64(d + CURVE_RAISED) + m.net);
    tf_write_u64(d + CURVE_SOLD, rd64(d + CURVE_SOLD) + m.out);
    tf_write_u64(d + CURVE_CREATOR_FEES, rd64(d + CURVE_CREATOR_FEES) + creator_fee);
    bool completes = m.out == t.left;
    t.vq += m.net;
    t.vt -= m.out;
    TradeEvent event = {1, m.charged, m.out, m.fee};
    emit_trade(a.curve, a.trader, &event, &t);
    if (completes) {
        d[CURVE_STATE] = STATE_COMPLETE;
        emit_complete(a.curve);
    }
    return TF_SUCCESS;
}

TF_HANDLER sell(TfInput *in) {
    if (in->account_count < 7 || in->data_len != 1 + 24) return TF_ERROR(ERR_BAD_INPUT);
    TradeAccounts a = {in->accounts[0], in->accounts[1], in->accounts[2], in->accounts[4], in->accounts[5], in->accounts[6]};
    u8 *from = in->accounts[3];
    u64 result = check_trade(in, &a);
    if (result != 0) return result;
    u64 tokens_in = rd64(in->data + 1), min_out = rd64(in->data + 9);
    TfClock clock;
    if (!now(&clock)) return TF_ERROR(ERR_BAD_INPUT);
    if (expired(&clock, (i64)rd64(in->data + 17))) return TF_ERROR(ERR_EXPIRED);
    if (tokens_in == 0) return TF_ERROR(ERR_ZERO_AMOUNT);
    u8 *d = tf_acc_data(a.curve);
    Terms t;
    if (!read_terms(d, &clock, &t)) return TF_ERROR(ERR_OVERFLOW);
    u64 raised = rd64(d + CURVE_RAISED), sold = rd64(d + CURVE_SOLD), gross, fee;
    if (tokens_in > sold) return TF_ERROR(ERR_INSUFFICIENT_RESERVE);
    if (!tf_mul_div(tokens_in, t.vq, t.vt + tokens_in, &gross)) return TF_ERROR(ERR_OVERFLOW);
    if (gross > raised) return TF_ERROR(ERR_INSUFFICIENT_RESERVE);
    if (!tf_mul_div_ceil(gross, t.fee_bps, BPS, &fee)) return TF_ERROR(ERR_OVERFLOW);
    u64 out = gross - fee;
    if (out < min_out) return TF_ERROR(ERR_SLIPPAGE);
    TfTransfer transfer = {a.token_program, from, a.mint, a.vault, a.trader, tokens_in, d[CURVE_DECIMALS], NULL};
    if ((result = tf_token_transfer(&transfer)) != 0) return result;
    u64 creator_fee = creator_share(fee, &t), platform_fee = fee - creator_fee;
    *tf_acc_lamports(a.curve) -= out + platform_fee;
    *tf_acc_lamports(a.trader) += out;
    *tf_acc_lamports(a.recipient) += platform_fee;
    tf_write_u64(d + CURVE_RAISED, raised - gross);
    tf_write_u64(d + CURVE_SOLD, sold - tokens_in);
    tf_write_u64(d + CURVE_CREATOR_FEES, rd64(d + CURVE_CREATOR_FEES) + creator_fee);
    t.vq -= gross;
    t.vt += tokens_in;
    TradeEvent event = {0, out, tokens_in, fee};
    emit_trade(a.curve, a.trader, &event, &t);
    return TF_SUCCESS;
}

TF_HANDLER claim(TfInput *in) {
    if (in->account_count < 2 || in->data_len != 1) return TF_ERROR(ERR_BAD_INPUT);
    u8 *creator = in->accounts[0], *curve = in->accounts[1];
    if (!tf_acc_signer(creator)) return TF_ERROR(ERR_NOT_SIGNER);
    if (!tf_acc_writable(creator) || !tf_acc_writable(curve)) return TF_ERROR(ERR_NOT_WRITABLE);
    if (!is_ours(in, curve, KIND_CURVE, CURVE_LEN)) return TF_ERROR(ERR_WRONG_ACCOUNT);
    u8 *d = tf_acc_data(curve);
    if (!tf_key_eq(tf_acc_key(creator), (TfPubkey *)(d + CURVE_CREATOR))) return TF_ERROR(ERR_NOT_CREATOR);
    u64 amount = rd64(d + CURVE_CREATOR_FEES);
    if (amount == 0) return TF_ERROR(ERR_NOTHING_TO_CLAIM);
    tf_write_u64(d + CURVE_CREATOR_FEES, 0);
    *tf_acc_lamports(curve) -= amount;
    *tf_acc_lamports(creator) += amount;
    u8 body[8];
    tf_write_u64(body, amount);
    TfSeed fields[4] = {{(const u8 *)"TFf1", 4}, {d + CURVE_MINT, 32}, {d + CURVE_CREATOR, 32}, {body, 8}};
    sol_log_data(fields, 4);
    return TF_SUCCESS;
}

/* ------------------------------------------------------------------ graduation */

/* The PDA [prefix, mint] of this program must be `account`; its bump into *bump. */
static __attribute__((noinline)) bool mint_pda(const TfInput *in, const TfSeed *prefix, u8 *mint, u8 *account,
                                               u8 *bump) {
    TfSeed seeds[2] = {*prefix, {tf_acc_key(mint)->x, TF_PUBKEY_LEN}};
    TfPubkey found;
    return sol_try_find_program_address(seeds, 2, in->program_id, &found, bump) == 0 &&
           tf_key_eq(&found, tf_acc_key(account));
}

/* Creates the PDA [prefix, mint, bump] as an account of `space` bytes owned by `owner`. */
typedef struct {
    const u8 *prefix;
    u64 prefix_len;
    u8 *mint, *account, *payer, *system;
    u8 bump;
    u64 space;
    const TfPubkey *owner;
} MintPdaAccount;

static __attribute__((noinline)) u64 create_mint_pda(const MintPdaAccount *a) {
    u8 bump_seed[1] = {a->bump};
    TfSeed seeds[3] = {{a->prefix, a->prefix_len}, {tf_acc_key(a->mint)->x, TF_PUBKEY_LEN}, {bump_seed, 1}};
    TfSeeds signer = {seeds, 3};
    TfCreatePda create = {a->payer, a->account, a->system, a->space, rent_exempt(a->space), a->owner, &signer};
    return tf_create_pda_account(&create);
}

/* Token-2022 initialize_account3: `account` holds `mint` for `owner` */
static __attribute__((noinline)) u64 init_token_account(u8 *token_program, u8 *account, u8 *mint, u8 *owner) {
    u8 data[1 + 32];
    data[0] = 18;
    tf_copy(data + 1, tf_acc_key(owner)->x, TF_PUBKEY_LEN);
    TfAccountMeta metas[2] = {{tf_acc_key(account), true, false}, {tf_acc_key(mint), false, false}};
    TfInstruction ix = {tf_acc_key(token_program), metas, 2, data, sizeof(data)};
    TfAccount infos[2];
    tf_account_info(account, &infos[0]);
    tf_account_info(mint, &infos[1]);
    return sol_invoke_signed_c(&ix, infos, 2, NULL, 0);
}

static u64 isqrt(u64 n) {
    u64 root = 0, bit = 1ULL << 62;
    while (bit > n) bit >>= 2;
    while (bit != 0) {
        if (n >= root + bit) {
            n -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return root;
}

typedef struct {
    u8 *payer, *curve, *curve_vault, *mint, *pool, *pool_vault, *lp_mint, *lp_account, *recipient, *token_program,
        *system;
} GraduateAccounts;

static __attribute__((noinline)) u64 check_graduate(const TfInput *in, const GraduateAccounts *a, u8 *bumps) {
    if (!tf_acc_signer(a->payer)) return TF_ERROR(ERR_NOT_SIGNER);
    if (!tf_acc_writable(a->curve) || !tf_acc_writable(a->curve_vault) || !tf_acc_writable(a->pool) ||
        !tf_acc_writable(a->pool_vault) || !tf_acc_writable(a->lp_mint) || !tf_acc_writable(a->lp_account) ||
        !tf_acc_writable(a->recipient))
        return TF_ERROR(ERR_NOT_WRITABLE);
    if (!is_ours(in, a->curve, KIND_CURVE, CURVE_LEN)) return TF_ERROR(ERR_WRONG_ACCOUNT);
    u8 *d = tf_acc_data(a->curve);
    if (d[CURVE_STATE] == STATE_GRADUATED) return TF_ERROR(ERR_ALREADY_GRADUATED);
    if (d[CURVE_STATE] != STATE_COMPLETE) return TF_ERROR(ERR_NOT_COMPLETE);
    if (!tf_key_eq(tf_acc_key(a->curve_vault), (TfPubkey *)(d + CURVE_VAULT)) ||
        !tf_key_eq(tf_acc_key(a->mint), (TfPubkey *)(d + CURVE_MINT)) ||
        !tf_key_eq(tf_acc_key(a->recipient), (TfPubkey *)(d + CURVE_FEE_RECIPIENT)) ||
        !tf_key_eq(tf_acc_key(a->token_program), &TF_TOKEN_2022_PROGRAM) ||
        !tf_key_eq(tf_acc_key(a->system), &TF_SYSTEM_PROGRAM))
        return TF_ERROR(ERR_WRONG_ACCOUNT);
    TfSeed pool = {SEED_POOL, sizeof(SEED_POOL)}, lp = {SEED_LP, sizeof(SEED_LP)};
    TfSeed lp_account = {SEED_LP_ACCOUNT, sizeof(SEED_LP_ACCOUNT)};
    if (!mint_pda(in, &pool, a->mint, a->pool, &bumps[0]) || !mint_pda(in, &lp, a->mint, a->lp_mint, &bumps[1]) ||
        !mint_pda(in, &lp_account, a->mint, a->lp_account, &bumps[2]))
        return TF_ERROR(ERR_WRONG_ACCOUNT);
    /* the pool's vault: an empty token account of the mint owned by the pool, nobody's delegate */
    if (!vault_ok(a->pool_vault, tf_acc_key(a->mint), tf_acc_key(a->pool), 0)) return TF_ERROR(ERR_WRONG_ACCOUNT);
    return TF_SUCCESS;
}

/* "TFg1" | mint | pool | native liquidity, token liquidity, LP burnt (u64s) | migration fee (u64) */
static __attribute__((noinline)) void emit_graduated(u8 *pool, u64 migration) {
    u8 *p = tf_acc_data(pool);
    u8 fee[8];
    tf_write_u64(fee, migration);
    TfSeed fields[5] = {{(const u8 *)"TFg1", 4}, {p + POOL_MINT, 32}, {tf_acc_key(pool)->x, 32}, {p + POOL_NATIVE, 24},
                        {fee, 8}};
    sol_log_data(fields, 5);
}

/* the LP account: created, then the LP minted into it and burnt at once (signed by the pool) */
static __attribute__((noinline)) u64 mint_and_burn_lp(const GraduateAccounts *a, const u8 *bumps, u64 lp) {
    MintPdaAccount lp_account = {SEED_LP_ACCOUNT, sizeof(SEED_LP_ACCOUNT), a->mint, a->lp_account, a->payer,
                                 a->system, bumps[2], TOKEN_ACCOUNT_LEN, &TF_TOKEN_2022_PROGRAM};
    u64 result;
    if ((result = create_mint_pda(&lp_account)) != 0) return result;
    if ((result = init_token_account(a->token_program, a->lp_account, a->lp_mint, a->pool)) != 0) return result;
    u8 bump_seed[1] = {bumps[0]};
    TfSeed seeds[3] = {{SEED_POOL, sizeof(SEED_POOL)}, {tf_acc_key(a->mint)->x, TF_PUBKEY_LEN}, {bump_seed, 1}};
    TfSeeds signer = {seeds, 3};
    TfSupplyChange mint = {TF_TOKEN_MINT_TO_CHECKED, a->token_program, a->lp_mint, a->lp_account, a->pool, lp, 9,
                           &signer};
    if ((result = tf_token_supply_change(&mint)) != 0) return result;
    TfSupplyChange burn = {TF_TOKEN_BURN_CHECKED, a->token_program, a->lp_mint, a->lp_account, a->pool, lp, 9, &signer};
    return tf_token_supply_change(&burn);
}

TF_HANDLER graduate(TfInput *in) {
    if (in->account_count < 11 || in->data_len != 1) return TF_ERROR(ERR_BAD_INPUT);
    u8 **x = in->accounts;
    GraduateAccounts a = {x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10]};
    u8 bumps[3];
    u64 result = check_graduate(in, &a, bumps);
    if (result != 0) return result;
    u8 *d = tf_acc_data(a.curve);
    u64 raised = rd64(d + CURVE_RAISED), migration = rd64(d + CURVE_MIGRATION_FEE);
    if (migration > raised) migration = raised;
    u64 native = raised - migration, tokens = rd64(tf_acc_data(a.curve_vault) + TOKEN_AMOUNT);
    MintPdaAccount pool = {SEED_POOL, sizeof(SEED_POOL), a.mint, a.pool, a.payer, a.system, bumps[0], POOL_LEN,
                           in->program_id};
    if ((result = create_mint_pda(&pool)) != 0) return result;
    MintPdaAccount lp_mint = {SEED_LP, sizeof(SEED_LP), a.mint, a.lp_mint, a.payer, a.system, bumps[1], MINT_BASE_LEN,
                              &TF_TOKEN_2022_PROGRAM};
    if ((result = create_mint_pda(&lp_mint)) != 0) return result;
    if ((result = tf_token_initialize_mint(a.token_program, a.lp_mint, tf_acc_key(a.pool), 9)) != 0) return result;
    TradeAccounts curve_side = {a.payer, a.curve, a.curve_vault, a.mint, a.recipient, a.token_program};
    if ((result = send_tokens(a.curve, &curve_side, a.pool_vault, tokens)) != 0) return result;
    u64 lp = isqrt(native) * isqrt(tokens);
    if ((result = mint_and_burn_lp(&a, bumps, lp)) != 0) return result;
    /* after the last CPI: the native liquidity and the migration fee leave the curve */
    *tf_acc_lamports(a.curve) -= native + migration;
    *tf_acc_lamports(a.pool) += native;
    *tf_acc_lamports(a.recipient) += migration;
    tf_write_u64(d + CURVE_RAISED, 0);
    d[CURVE_STATE] = STATE_GRADUATED;
    u8 *p = tf_acc_data(a.pool);
    p[0] = KIND_POOL;
    p[1] = LAYOUT_VERSION;
    p[POOL_BUMP] = bumps[0];
    p[POOL_DECIMALS] = d[CURVE_DECIMALS];
    tf_copy(p + POOL_MINT, tf_acc_key(a.mint)->x, 32);
    tf_copy(p + POOL_VAULT, tf_acc_key(a.pool_vault)->x, 32);
    tf_copy(p + POOL_LP_MINT, tf_acc_key(a.lp_mint)->x, 32);
    tf_write_u64(p + POOL_NATIVE, native);
    tf_write_u64(p + POOL_TOKENS, tokens);
    tf_write_u64(p + POOL_LP_BURNT, lp);
    wr16(p + POOL_FEE, POOL_FEE_BPS);
    emit_graduated(a.pool, migration);
    return TF_SUCCESS;
}

/* ------------------------------------------------------------------ the pool */

/* out = floor(in_net * reserve_out / (reserve_in + in_net)), in_net = floor(in * (1 - fee)) */
static __attribute__((noinline)) bool swap_out(u64 amount_in, u64 reserve_in, u64 reserve_out, u64 *out) {
    u64 in_net;
    if (!tf_mul_div(amount_in, BPS - POOL_FEE_BPS, BPS, &in_net) || reserve_in + in_net < reserve_in) return false;
    return tf_mul_div(in_net, reserve_out, reserve_in + in_net, out);
}

/* "TFs1" | mint | trader | is_buy u8, native, tokens, fee (u64s) | native and token reserves after */
static __attribute__((noinline)) void emit_swap(u8 *pool, u8 *trader, const TradeEvent *e) {
    u8 *p = tf_acc_data(pool);
    u8 body[1 + 8 * 3];
    body[0] = e->is_buy;
    tf_write_u64(body + 1, e->native);
    tf_write_u64(body + 9, e->tokens);
    tf_write_u64(body + 17, e->fee);
    TfSeed fields[5] = {{(const u8 *)"TFs1", 4}, {p + POOL_MINT, 32}, {tf_acc_key(trader)->x, 32}, {body, sizeof(body)},
                        {p + POOL_NATIVE, 16}};
    sol_log_data(fields, 5); /* ... and the reserves after it */
}

TF_HANDLER swap(TfInput *in) {
    if (in->account_count < 7 || in->data_len != 1 + 1 + 24) return TF_ERROR(ERR_BAD_INPUT);
    u8 *trader = in->accounts[0], *pool = in->accounts[1], *vault = in->accounts[2], *account = in->accounts[3];
    u8 *mint = in->accounts[4], *token_program = in->accounts[5], *system = in->accounts[6];
    if (!tf_acc_signer(trader)) return TF_ERROR(ERR_NOT_SIGNER);
    if (!tf_acc_writable(trader) || !tf_acc_writable(pool) || !tf_acc_writable(vault) || !tf_acc_writable(account))
        return TF_ERROR(ERR_NOT_WRITABLE);
    if (!is_ours(in, pool, KIND_POOL, POOL_LEN)) return TF_ERROR(ERR_WRONG_ACCOUNT);
    u8 *p = tf_acc_data(pool);
    if (!tf_key_eq(tf_acc_key(vault), (TfPubkey *)(p + POOL_VAULT)) ||
        !tf_key_eq(tf_acc_key(mint), (TfPubkey *)(p + POOL_MINT)) ||
        !tf_key_eq(tf_acc_key(token_program), &TF_TOKEN_2022_PROGRAM) ||
        !tf_key_eq(tf_acc_key(system), &TF_SYSTEM_PROGRAM) || tf_key_eq(tf_acc_key(account), tf_acc_key(vault)))
        return TF_ERROR(ERR_WRONG_ACCOUNT);
    u8 is_buy = in->data[1];
    u64 amount_in = rd64(in->data + 2), min_out = rd64(in->data + 10), out;
    TfClock clock;
    if (is_buy > 1 || !now(&clock)) return TF_ERROR(ERR_BAD_INPUT);
    if (expired(&clock, (i64)rd64(in->data + 18))) return TF_ERROR(ERR_EXPIRED);
    if (amount_in == 0) return TF_ERROR(ERR_ZERO_AMOUNT);
    u64 native = rd64(p + POOL_NATIVE), tokens = rd64(p + POOL_TOKENS), result;
    if (!(is_buy ? swap_out(amount_in, native, tokens, &out) : swap_out(amount_in, tokens, native, &out)))
        return TF_ERROR(ERR_OVERFLOW);
    if (out == 0) return TF_ERROR(ERR_ZERO_AMOUNT);
    if (out < min_out) return TF_ERROR(ERR_SLIPPAGE);
    u64 in_net = 0;
    tf_mul_div(amount_in, BPS - POOL_FEE_BPS, BPS, &in_net); /* cannot fail: swap_out did it */
    u64 fee = amount_in - in_net;
    if (is_buy) {
        if ((result = tf_system_transfer(trader, pool, system, amount_in)) != 0) return result;
        u8 bump_seed[1] = {p[POOL_BUMP]};
        TfSeed seeds[3] = {{SEED_POOL, sizeof(SEED_POOL)}, {p + POOL_MINT, 32}, {bump_seed, 1}};
        TfSeeds signer = {seeds, 3};
        TfTransfer transfer = {token_program, vault, mint, account, pool, out, p[POOL_DECIMALS], &signer};
        if ((result = tf_token_transfer(&transfer)) != 0) return result;
        tf_write_u64(p + POOL_NATIVE, native + amount_in);
        tf_write_u64(p + POOL_TOKENS, tokens - out);
    } else {
        TfTransfer transfer = {token_program, account, mint, vault, trader, amount_in, p[POOL_DECIMALS], NULL};
        if ((result = tf_token_transfer(&transfer)) != 0) return result;
        *tf_acc_lamports(pool) -= out; /* after the CPI: the pool owns its lamports */
        *tf_acc_lamports(trader) += out;
        tf_write_u64(p + POOL_NATIVE, native - out);
        tf_write_u64(p + POOL_TOKENS, tokens + amount_in);
    }
    TradeEvent event = {is_buy, is_buy ? amount_in : out, is_buy ? out : amount_in, fee};
    emit_swap(pool, trader, &event);
    return TF_SUCCESS;
}

u64 entrypoint(u8 *input) {
    TfInput in;
    if (!tf_deserialize(input, &in) || in.data_len < 1) return TF_ERROR(ERR_BAD_INPUT);
    switch (in.data[0]) {
        case 0: return init_config(&in);
        case 1: return set_config(&in);
        case 2: return create_curve(&in);
        case 3: return buy(&in);
        case 4: return sell(&in);
        case 5: return claim(&in);
        case 6: return graduate(&in);
        case 7: return swap(&in);
        default: return TF_ERROR(ERR_BAD_INPUT);
    }
}
