// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";

/// @title TokenForge fixed-supply ERC-20, used only through EIP-1167 clones with immutable args.
/// @notice Name, symbol and decimals live in the clone's own code, appended after the
///         45-byte proxy as `abi.encodePacked(uint8 decimals, uint8 nameLen, name, symbol)`.
///         Storage holds only the ERC-20 balances, allowances and total supply.
///         The whole supply is minted to the creator by `initialize`, called once by the
///         factory in the transaction that deploys the clone; there is no other mint.
contract TokenForgeToken is ERC20 {
    /// @notice The factory allowed to initialize clones of this implementation.
    address public immutable factory;

    error NotFactory();
    error AlreadyInitialized();
    error ZeroSupply();

    constructor() ERC20("", "") {
        factory = msg.sender;
    }

    /// @notice Mints `supply` base units to `creator`. Callable once, by the factory only.
    function initialize(address creator, uint256 supply) external {
        if (msg.sender != factory) revert NotFactory();
        // A fixed, non-zero supply doubles as the "initialized" flag: no extra storage slot.
        if (totalSupply() != 0) revert AlreadyInitialized();
        if (supply == 0) revert ZeroSupply();
        _mint(creator, supply);
    }

    function name() public view override returns (string memory) {
        bytes memory args = Clones.fetchCloneArgs(address(this));
        uint256 nameLen = uint8(args[1]);
        return string(_slice(args, 2, nameLen));
    }

    function symbol() public view override returns (string memory) {
        bytes memory args = Clones.fetchCloneArgs(address(this));
        uint256 start = 2 + uint256(uint8(args[1]));
        return string(_slice(args, start, args.length - start));
    }

    function decimals() public view override returns (uint8) {
        return uint8(Clones.fetchCloneArgs(address(this))[0]);
    }

    function _slice(bytes memory data, uint256 start, uint256 len) private pure returns (bytes memory out) {
        out = new bytes(len);
        for (uint256 i = 0; i < len; ++i) {
            out[i] = data[start + i];
        }
    }
}
