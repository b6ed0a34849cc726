// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";

interface IGraduation {
    function graduated() external view returns (bool);
}

/// @title TokenForge fixed-supply ERC-20, used only through EIP-1167 clones with immutable args.
/// @notice Name, symbol and decimals live in the clone's own code, appended after the
///         45-byte proxy as `abi.encodePacked(uint8 decimals, uint8 nameLen, name, symbol)`.
///         Storage holds only the ERC-20 balances, allowances and total supply.
///
///         `initialize`, called once by the factory in the transaction that deploys the
///         clone, creates the token's bonding curve (this clone's first CREATE, so its
///         address is `curve()` with no storage) and mints the whole supply to it; there is
///         no other mint. Two rules serve the curve:
///         - the curve may pull tokens *to itself* without an allowance (a sale is one
///           transaction);
///         - nobody may send tokens to the token's Uniswap V2 pair before the curve has
///           graduated, so nobody can price the pool before the curve seeds it.
contract TokenForgeToken is ERC20 {
    /// @notice The factory allowed to initialize clones of this implementation.
    address public immutable factory;
    address public immutable curveImplementation;
    address private immutable _uniswapFactory;
    address private immutable _weth;
    bytes32 private immutable _pairInitCodeHash;

    error NotFactory();
    error AlreadyInitialized();
    error ZeroSupply();
    error PoolNotOpen();

    constructor(address curveImplementation_, address uniswapFactory_, address weth_, bytes32 pairInitCodeHash_)
        ERC20("", "")
    {
        factory = msg.sender;
        curveImplementation = curveImplementation_;
        _uniswapFactory = uniswapFactory_;
        _weth = weth_;
        _pairInitCodeHash = pairInitCodeHash_;
    }

    /// @notice Creates the curve with `curveArgs` and mints `supply` base units to it.
    ///         Callable once, by the factory only. Returns the curve.
    function initialize(uint256 supply, bytes calldata curveArgs) external returns (address curve_) {
        if (msg.sender != factory) revert NotFactory();
        // A fixed, non-zero supply doubles as the "initialized" flag: no extra storage slot.
        if (totalSupply() != 0) revert AlreadyInitialized();
        if (supply == 0) revert ZeroSupply();
        curve_ = Clones.cloneWithImmutableArgs(curveImplementation, abi.encodePacked(address(this), curveArgs));
        _mint(curve_, supply);
    }

    /// @notice The token's bonding curve: the address of this clone's first CREATE (nonce 1).
    function curve() public view returns (address) {
        return address(uint160(uint256(keccak256(abi.encodePacked(bytes2(0xd694), address(this), bytes1(0x01))))));
    }

    /// @notice The token's Uniswap V2 pair with wrapped native (it may not exist yet).
    function pool() public view returns (address) {
        (address t0, address t1) = address(this) < _weth ? (address(this), _weth) : (_weth, address(this));
        bytes32 salt = keccak256(abi.encodePacked(t0, t1));
        return address(uint160(uint256(keccak256(abi.encodePacked(hex"ff", _uniswapFactory, salt, _pairInitCodeHash)))));
    }

    /// @notice ERC-20 `transferFrom`, except that the curve needs no allowance to pull
    ///         tokens to itself (the seller calls the curve, which checks the seller).
    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        address spender = _msgSender();
        if (spender != to || to != curve()) _spendAllowance(from, spender, value);
        _transfer(from, to, value);
        return true;
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

    function _update(address from, address to, uint256 value) internal override {
        if (to == pool() && !IGraduation(curve()).graduated()) revert PoolNotOpen();
        super._update(from, to, value);
    }

    function _slice(bytes memory data, uint256 start, uint256 len) private pure returns (bytes memory out) {
        out = new bytes(len);
        for (uint256 i = 0; i < len; ++i) {
            out[i] = data[start + i];
        }
    }
}
