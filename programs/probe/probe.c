/*
 * TokenForge's probe program: each instruction exercises one runtime feature the market
 * program relies on, so a toolchain or loader change shows up as one failing test
 * (tests/contract/test_sbf_probe.py), not as a broken market.
 *
 *   0 echo        return data = the instruction data after the tag; logs a line
 *   1 mul_div     a * b / c in 128 bits (u64 a, b, c) -> return data u64; error 3 on overflow
 *   2 create_pda  accounts [payer (signer, w), pda (w), system program]; data [u64 lamports]:
 *                 creates the PDA ["probe", payer] (8 bytes) owned by this program, a
 *                 system-program CPI signed by the PDA's seeds
 *   3 transfer    accounts [source (w), mint, destination (w), authority PDA, token program, payer];
 *                 data [u64 amount, u8 decimals]: Token-2022 transfer_checked CPI with the PDA
 *                 ["probe", payer] as the signing authority
 */
#include "../include/tf_sbf.h"

#define ERR_BAD_INPUT 1
#define ERR_BAD_ACCOUNT 2
#define ERR_OVERFLOW 3

static const u8 SEED_PREFIX[5] = {'p', 'r', 'o', 'b', 'e'};

TF_HANDLER echo(const TfInput *in) {
    tf_log("probe: echo");
    sol_set_return_data(in->data + 1, in->data_len - 1);
    return TF_SUCCESS;
}

TF_HANDLER mul_div(const TfInput *in) {
    if (in->data_len != 1 + 24) return TF_ERROR(ERR_BAD_INPUT);
    u64 a = tf_read_u64(in->data + 1), b = tf_read_u64(in->data + 9), c = tf_read_u64(in->data + 17);
    if (c == 0) return TF_ERROR(ERR_BAD_INPUT);
    bool overflow;
    u64 q = u128_div64(u128_mul(a, b), c, &overflow);
    if (overflow) return TF_ERROR(ERR_OVERFLOW);
    u8 out[8];
    tf_write_u64(out, q);
    sol_set_return_data(out, 8);
    return TF_SUCCESS;
}

/* The PDA ["probe", payer] of this program and its bump; false when `expected` is not it. */
static bool probe_pda(const TfInput *in, const TfPubkey *payer, const TfPubkey *expected, u8 *bump) {
    TfSeed seeds[2] = {{SEED_PREFIX, sizeof(SEED_PREFIX)}, {payer->x, TF_PUBKEY_LEN}};
    TfPubkey found;
    if (sol_try_find_program_address(seeds, 2, in->program_id, &found, bump) != 0) return false;
    return tf_key_eq(&found, expected);
}

TF_HANDLER create_pda(TfInput *in) {
    if (in->account_count < 3 || in->data_len != 1 + 8) return TF_ERROR(ERR_BAD_INPUT);
    u8 *payer = in->accounts[0], *pda = in->accounts[1], *system = in->accounts[2];
    u8 bump;
    if (!tf_acc_signer(payer) || !tf_acc_writable(pda) || !probe_pda(in, tf_acc_key(payer), tf_acc_key(pda), &bump))
        return TF_ERROR(ERR_BAD_ACCOUNT);
    /* system_program::create_account: u32 0, u64 lamports, u64 space, owner */
    u8 data[4 + 8 + 8 + 32];
    tf_zero(data, sizeof(data));
    tf_copy(data + 4, in->data + 1, 8);
    tf_write_u64(data + 12, 8);
    tf_copy(data + 20, in->program_id->x, TF_PUBKEY_LEN);
    TfAccountMeta metas[2] = {{tf_acc_key(payer), true, true}, {tf_acc_key(pda), true, true}};
    TfInstruction ix = {tf_acc_key(system), metas, 2, data, sizeof(data)};
    u8 bump_seed[1] = {bump};
    TfSeed seeds[3] = {{SEED_PREFIX, sizeof(SEED_PREFIX)}, {tf_acc_key(payer)->x, TF_PUBKEY_LEN}, {bump_seed, 1}};
    TfSeeds signer = {seeds, 3};
    TfAccount infos[2];
    tf_account_info(payer, &infos[0]);
    tf_account_info(pda, &infos[1]);
    return sol_invoke_signed_c(&ix, infos, 2, &signer, 1);
}

TF_HANDLER transfer(TfInput *in) {
    if (in->account_count < 6 || in->data_len != 1 + 9) return TF_ERROR(ERR_BAD_INPUT);
    u8 *source = in->accounts[0], *mint = in->accounts[1], *destination = in->accounts[2];
    u8 *authority = in->accounts[3], *token_program = in->accounts[4], *payer = in->accounts[5];
    u8 bump;
    if (!probe_pda(in, tf_acc_key(payer), tf_acc_key(authority), &bump)) return TF_ERROR(ERR_BAD_ACCOUNT);
    u8 data[1 + 8 + 1];
    data[0] = 12; /* TransferChecked: u64 amount, u8 decimals */
    tf_copy(data + 1, in->data + 1, 9);
    TfAccountMeta metas[4] = {{tf_acc_key(source), true, false},
                              {tf_acc_key(mint), false, false},
                              {tf_acc_key(destination), true, false},
                              {tf_acc_key(authority), false, true}};
    TfInstruction ix = {tf_acc_key(token_program), metas, 4, data, sizeof(data)};
    u8 bump_seed[1] = {bump};
    TfSeed seeds[3] = {{SEED_PREFIX, sizeof(SEED_PREFIX)}, {tf_acc_key(payer)->x, TF_PUBKEY_LEN}, {bump_seed, 1}};
    TfSeeds signer = {seeds, 3};
    TfAccount infos[4];
    tf_account_info(source, &infos[0]);
    tf_account_info(mint, &infos[1]);
    tf_account_info(destination, &infos[2]);
    tf_account_info(authority, &infos[3]);
    return sol_invoke_signed_c(&ix, infos, 4, &signer, 1);
}

u64 entrypoint(u8 *input) {
    TfInput in;
    if (!tf_deserialize(input, &in) || in.data_len < 1) return TF_ERROR(ERR_BAD_INPUT);
    switch (in.data[0]) {
        case 0: return echo(&in);
        case 1: return mul_div(&in);
        case 2: return create_pda(&in);
        case 3: return transfer(&in);
        default: return TF_ERROR(ERR_BAD_INPUT);
    }
}
