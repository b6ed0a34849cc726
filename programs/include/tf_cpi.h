/*
 * Cross-program calls TokenForge's programs make: the system program (lamport transfers,
 * creating a program-owned PDA account) and Token-2022's transfer_checked. Each is its own
 * function (its own 512-byte frame). Every call returns the runtime's result (0 = success).
 */
#ifndef TF_CPI_H
#define TF_CPI_H

#include "tf_sbf.h"

/* program ids, as bytes */
static const TfPubkey TF_SYSTEM_PROGRAM = {{0}};
/* TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb */
static const TfPubkey TF_TOKEN_2022_PROGRAM = {{6,   221, 246, 225, 238, 117, 143, 222, 24,  66,  93,  188, 228, 108, 205, 218,
                                                182, 26,  252, 77,  131, 185, 13,  39,  254, 189, 249, 40,  216, 161, 139, 252}};

#define TF_SYS_CREATE_ACCOUNT 0
#define TF_SYS_ASSIGN 1
#define TF_SYS_TRANSFER 2
#define TF_SYS_ALLOCATE 8
#define TF_TOKEN_TRANSFER_CHECKED 12
#define TF_TOKEN_MINT_TO_CHECKED 14
#define TF_TOKEN_BURN_CHECKED 15
#define TF_TOKEN_INITIALIZE_MINT2 20

/* `lamports` from `from` (a signer of the transaction) to `to` */
static __attribute__((noinline)) u64 tf_system_transfer(u8 *from, u8 *to, u8 *system_program, u64 lamports) {
    u8 data[4 + 8];
    tf_zero(data, 4);
    data[0] = TF_SYS_TRANSFER;
    tf_write_u64(data + 4, lamports);
    TfAccountMeta metas[2] = {{tf_acc_key(from), true, true}, {tf_acc_key(to), true, false}};
    TfInstruction ix = {tf_acc_key(system_program), metas, 2, data, sizeof(data)};
    TfAccount infos[2];
    tf_account_info(from, &infos[0]);
    tf_account_info(to, &infos[1]);
    return sol_invoke_signed_c(&ix, infos, 2, NULL, 0);
}

/* one system instruction on `pda` alone, signed by its seeds (allocate or assign) */
static __attribute__((noinline)) u64 tf_system_pda_call(u8 *pda, u8 *system_program, const u8 *data, u64 len,
                                                        const TfSeeds *signer) {
    TfAccountMeta metas[1] = {{tf_acc_key(pda), true, true}};
    TfInstruction ix = {tf_acc_key(system_program), metas, 1, (u8 *)data, len};
    TfAccount infos[1];
    tf_account_info(pda, &infos[0]);
    return sol_invoke_signed_c(&ix, infos, 1, signer, 1);
}

/* What tf_create_pda_account makes: `pda` a rent-exempt account of `space` bytes owned by
 * `owner`, paid by `payer` (a signer), signed by the PDA's seeds. */
typedef struct {
    u8 *payer;
    u8 *pda;
    u8 *system_program;
    u64 space;
    u64 rent_lamports;
    const TfPubkey *owner;
    const TfSeeds *signer;
} TfCreatePda;

/* Works when someone sent lamports to the address first (create_account would refuse it):
 * then it tops up, allocates and assigns. */
static __attribute__((noinline)) u64 tf_create_pda_account(const TfCreatePda *c) {
    u64 have = *tf_acc_lamports(c->pda);
    if (have == 0) {
        u8 data[4 + 8 + 8 + 32];
        tf_zero(data, 4);
        data[0] = TF_SYS_CREATE_ACCOUNT;
        tf_write_u64(data + 4, c->rent_lamports);
        tf_write_u64(data + 12, c->space);
        tf_copy(data + 20, c->owner->x, TF_PUBKEY_LEN);
        TfAccountMeta metas[2] = {{tf_acc_key(c->payer), true, true}, {tf_acc_key(c->pda), true, true}};
        TfInstruction ix = {tf_acc_key(c->system_program), metas, 2, data, sizeof(data)};
        TfAccount infos[2];
        tf_account_info(c->payer, &infos[0]);
        tf_account_info(c->pda, &infos[1]);
        return sol_invoke_signed_c(&ix, infos, 2, c->signer, 1);
    }
    u64 result;
    if (have < c->rent_lamports &&
        (result = tf_system_transfer(c->payer, c->pda, c->system_program, c->rent_lamports - have)) != 0)
        return result;
    u8 allocate[4 + 8];
    tf_zero(allocate, 4);
    allocate[0] = TF_SYS_ALLOCATE;
    tf_write_u64(allocate + 4, c->space);
    if ((result = tf_system_pda_call(c->pda, c->system_program, allocate, sizeof(allocate), c->signer)) != 0)
        return result;
    u8 assign[4 + 32];
    tf_zero(assign, 4);
    assign[0] = TF_SYS_ASSIGN;
    tf_copy(assign + 4, c->owner->x, TF_PUBKEY_LEN);
    return tf_system_pda_call(c->pda, c->system_program, assign, sizeof(assign), c->signer);
}

/* A Token-2022 transfer_checked of `amount` from `source` to `destination` by `authority`
 * (a transaction signer, or the PDA whose seeds are `signer`; NULL: no PDA signs). */
typedef struct {
    u8 *token_program;
    u8 *source;
    u8 *mint;
    u8 *destination;
    u8 *authority;
    u64 amount;
    u8 decimals;
    const TfSeeds *signer;
} TfTransfer;

static __attribute__((noinline)) u64 tf_token_transfer(const TfTransfer *t) {
    u8 data[1 + 8 + 1];
    data[0] = TF_TOKEN_TRANSFER_CHECKED;
    tf_write_u64(data + 1, t->amount);
    data[9] = t->decimals;
    TfAccountMeta metas[4] = {{tf_acc_key(t->source), true, false},
                              {tf_acc_key(t->mint), false, false},
                              {tf_acc_key(t->destination), true, false},
                              {tf_acc_key(t->authority), false, true}};
    TfInstruction ix = {tf_acc_key(t->token_program), metas, 4, data, sizeof(data)};
    TfAccount infos[4];
    tf_account_info(t->source, &infos[0]);
    tf_account_info(t->mint, &infos[1]);
    tf_account_info(t->destination, &infos[2]);
    tf_account_info(t->authority, &infos[3]);
    return sol_invoke_signed_c(&ix, infos, 4, t->signer, t->signer == NULL ? 0 : 1);
}

/* Token-2022 initialize_mint2 of `mint` (an account of 82 bytes it owns): `decimals`,
 * mint authority `authority`, no freeze authority */
static __attribute__((noinline)) u64 tf_token_initialize_mint(u8 *token_program, u8 *mint, const TfPubkey *authority,
                                                              u8 decimals) {
    u8 data[1 + 1 + 32 + 1];
    data[0] = TF_TOKEN_INITIALIZE_MINT2;
    data[1] = decimals;
    tf_copy(data + 2, authority->x, TF_PUBKEY_LEN);
    data[34] = 0; /* COption::None: no freeze authority */
    TfAccountMeta metas[1] = {{tf_acc_key(mint), true, false}};
    TfInstruction ix = {tf_acc_key(token_program), metas, 1, data, sizeof(data)};
    TfAccount infos[1];
    tf_account_info(mint, &infos[0]);
    return sol_invoke_signed_c(&ix, infos, 1, NULL, 0);
}

/* mint_to_checked (kind TF_TOKEN_MINT_TO_CHECKED: `account` is the destination) or
 * burn_checked (TF_TOKEN_BURN_CHECKED: `account` is the source) of `amount` of `mint`,
 * `authority` signing with `signer`'s seeds. */
typedef struct {
    u8 kind;
    u8 *token_program;
    u8 *mint;
    u8 *account;
    u8 *authority;
    u64 amount;
    u8 decimals;
    const TfSeeds *signer;
} TfSupplyChange;

static __attribute__((noinline)) u64 tf_token_supply_change(const TfSupplyChange *c) {
    u8 data[1 + 8 + 1];
    data[0] = c->kind;
    tf_write_u64(data + 1, c->amount);
    data[9] = c->decimals;
    bool mint_first = c->kind == TF_TOKEN_MINT_TO_CHECKED; /* mint_to: mint, account; burn: account, mint */
    TfAccountMeta metas[3] = {{tf_acc_key(mint_first ? c->mint : c->account), true, false},
                              {tf_acc_key(mint_first ? c->account : c->mint), true, false},
                              {tf_acc_key(c->authority), false, true}};
    TfInstruction ix = {tf_acc_key(c->token_program), metas, 3, data, sizeof(data)};
    TfAccount infos[3];
    tf_account_info(mint_first ? c->mint : c->account, &infos[0]);
    tf_account_info(mint_first ? c->account : c->mint, &infos[1]);
    tf_account_info(c->authority, &infos[2]);
    return sol_invoke_signed_c(&ix, infos, 3, c->signer, 1);
}

#endif
