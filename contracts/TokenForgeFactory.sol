// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {TokenForgeToken} from "./TokenForgeToken.sol";

/// @title TokenForge token factory.
/// @notice Deploys each token as an EIP-1167 clone with immutable args at a CREATE2 address
///         derived from `salt` (keccak256 of the launch job id) and the args, and mints its
///         fixed supply in the same transaction. A second `createToken` with the same salt
///         and args reverts, so one job can never produce two tokens.
///
///         args = abi.encodePacked(uint8 decimals, uint8 nameLen, bytes name, bytes symbol)
///         with 1 <= nameLen <= 128 (UTF-8 bytes) and 1 <= symbol length <= 10.
contract TokenForgeFactory {
    /// @notice The ERC-20 implementation every clone delegates to.
    address public immutable implementation;

    event TokenCreated(address indexed token, address indexed creator, bytes32 indexed salt);

    error InvalidArgs();

    constructor() {
        implementation = address(new TokenForgeToken());
    }

    /// @notice Deploys and initializes one token; returns its address.
    function createToken(bytes32 salt, bytes calldata args, address creator, uint256 supply)
        external
        returns (address token)
    {
        _checkArgs(args);
        token = Clones.cloneDeterministicWithImmutableArgs(implementation, args, salt);
        TokenForgeToken(token).initialize(creator, supply);
        emit TokenCreated(token, creator, salt);
    }

    /// @notice The address `createToken(salt, args, ...)` deploys to (or deployed to).
    function predictAddress(bytes32 salt, bytes calldata args) external view returns (address) {
        return Clones.predictDeterministicAddressWithImmutableArgs(implementation, args, salt);
    }

    function _checkArgs(bytes calldata args) private pure {
        if (args.length < 4) revert InvalidArgs();
        uint256 nameLen = uint8(args[1]);
        if (nameLen == 0 || nameLen > 128) revert InvalidArgs();
        if (args.length < 2 + nameLen + 1 || args.length > 2 + nameLen + 10) revert InvalidArgs();
    }
}
