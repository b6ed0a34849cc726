// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {TokenForgeCurve} from "./TokenForgeCurve.sol";
import {TokenForgeToken} from "./TokenForgeToken.sol";

/// @title TokenForge token factory.
/// @notice One `createToken` launches a token and its bonding curve: the token is an
///         EIP-1167 clone with immutable args at a CREATE2 address derived from `salt`
///         (keccak256 of the launch job id), the launch's terms (creator, supply, launch
///         fee) and the args; it creates its curve (a clone of the curve implementation)
///         and mints its whole supply to the curve. A second `createToken` with the same
///         salt, terms and args reverts, so one job can never produce two tokens; and since
///         the terms are in the address, whoever copies a launch from the mempool can only
///         create that very launch (same creator, same supply, same fee), never take its
///         address with other terms.
///
///         token args = abi.encodePacked(uint8 decimals, uint8 nameLen, bytes name, bytes symbol)
///         with 1 <= nameLen <= 128 (UTF-8 bytes) and 1 <= symbol length <= 10.
///
///         The platform's settings (`config`) are snapshotted into each curve at launch, so
///         a change never alters the terms of a token already trading. The owner may change
///         them within the bounds below; a launch may add a decaying launch fee within them.
contract TokenForgeFactory {
    uint256 public constant MAX_PLATFORM_FEE_BPS = 500;
    uint256 public constant MAX_CREATOR_FEE_BPS = 500;
    uint256 public constant MAX_LAUNCH_FEE_BPS = 9900;
    uint256 public constant MAX_LAUNCH_WINDOW_S = 3600;
    uint256 public constant MAX_LAUNCH_WINDOW_BLOCKS = 300;
    /// @notice Uniswap V2 reserves are uint112; the curve's virtual tokens are 1.073 x supply.
    uint256 public constant MAX_SUPPLY = (uint256(type(uint112).max) * 1000) / 1073;

    struct Config {
        address feeRecipient;
        uint16 platformFeeBps;
        uint16 creatorFeeBps;
        uint16 maxLaunchFeeBps;
        uint32 maxLaunchWindowS;
        uint16 maxLaunchWindowBlocks;
        uint112 virtualNative0;
        uint112 migrationFee;
    }

    /// @notice The ERC-20 implementation every token clone delegates to.
    address public immutable implementation;
    /// @notice The curve implementation every curve clone delegates to.
    address public immutable curveImplementation;
    address public immutable uniswapFactory;
    address public immutable weth;

    address public owner;
    Config public config;

    event TokenCreated(
        address indexed token,
        address indexed creator,
        bytes32 indexed salt,
        address curve,
        uint256 supply,
        uint256 virtualNative0,
        uint256 platformFeeBps,
        uint256 creatorFeeBps,
        uint256 launchFeeBps,
        uint256 launchWindow,
        bool windowInBlocks,
        uint256 migrationFee,
        uint256 launchedAt
    );
    event ConfigChanged(Config config);
    event OwnerChanged(address indexed owner);

    error InvalidArgs();
    error InvalidConfig();
    error InvalidLaunchFee();
    error NotOwner();

    constructor(address uniswapFactory_, address weth_, bytes32 pairInitCodeHash, Config memory initial) {
        owner = msg.sender;
        uniswapFactory = uniswapFactory_;
        weth = weth_;
        curveImplementation = address(new TokenForgeCurve(uniswapFactory_, weth_));
        implementation = address(new TokenForgeToken(curveImplementation, uniswapFactory_, weth_, pairInitCodeHash));
        _setConfig(initial);
    }

    /// @notice Deploys one token and its curve; returns the token's address.
    /// @param launchFeeBps the fee at the launch instant, decaying linearly to the base fee
    ///        over `launchWindow` seconds (or blocks); 0 and 0 for no launch fee.
    function createToken(
        bytes32 salt,
        bytes calldata args,
        address creator,
        uint256 supply,
        uint16 launchFeeBps,
        uint32 launchWindow,
        bool windowInBlocks
    ) external returns (address token) {
        _checkArgs(args);
        if (creator == address(0) || supply == 0 || supply > MAX_SUPPLY) revert InvalidArgs();
        Config memory c = config;
        _checkLaunchFee(c, launchFeeBps, launchWindow, windowInBlocks);
        uint256 launchedAt = windowInBlocks ? block.number : block.timestamp;
        bytes memory curveArgs = abi.encodePacked(
            creator,
            uint112(supply),
            c.virtualNative0,
            c.platformFeeBps,
            c.creatorFeeBps,
            launchFeeBps,
            launchWindow,
            windowInBlocks ? uint8(1) : uint8(0),
            c.migrationFee,
            uint40(launchedAt)
        );
        bytes32 addressSalt = _addressSalt(salt, creator, supply, launchFeeBps, launchWindow, windowInBlocks);
        token = Clones.cloneDeterministicWithImmutableArgs(implementation, args, addressSalt);
        address curve = TokenForgeToken(token).initialize(supply, curveArgs);
        emit TokenCreated(
            token,
            creator,
            salt,
            curve,
            supply,
            c.virtualNative0,
            c.platformFeeBps,
            c.creatorFeeBps,
            launchFeeBps,
            launchWindow,
            windowInBlocks,
            c.migrationFee,
            launchedAt
        );
    }

    /// @notice The address `createToken` with these arguments deploys to (or deployed to).
    function predictAddress(
        bytes32 salt,
        bytes calldata args,
        address creator,
        uint256 supply,
        uint16 launchFeeBps,
        uint32 launchWindow,
        bool windowInBlocks
    ) external view returns (address) {
        bytes32 addressSalt = _addressSalt(salt, creator, supply, launchFeeBps, launchWindow, windowInBlocks);
        return Clones.predictDeterministicAddressWithImmutableArgs(implementation, args, addressSalt);
    }

    /// @notice Who receives the platform's fees (read by every curve when it pays them).
    function feeRecipient() external view returns (address) {
        return config.feeRecipient;
    }

    function setConfig(Config calldata next) external {
        if (msg.sender != owner) revert NotOwner();
        _setConfig(next);
    }

    function transferOwnership(address next) external {
        if (msg.sender != owner) revert NotOwner();
        if (next == address(0)) revert InvalidConfig();
        owner = next;
        emit OwnerChanged(next);
    }

    function _setConfig(Config memory c) private {
        if (
            c.feeRecipient == address(0) || c.platformFeeBps > MAX_PLATFORM_FEE_BPS
                || c.creatorFeeBps > MAX_CREATOR_FEE_BPS || c.maxLaunchFeeBps > MAX_LAUNCH_FEE_BPS
                || c.maxLaunchWindowS > MAX_LAUNCH_WINDOW_S || c.maxLaunchWindowBlocks > MAX_LAUNCH_WINDOW_BLOCKS
                || c.virtualNative0 == 0 || c.migrationFee > c.virtualNative0
        ) revert InvalidConfig();
        config = c;
        emit ConfigChanged(c);
    }

    function _checkLaunchFee(Config memory c, uint256 feeBps, uint256 window, bool inBlocks) private pure {
        if (window == 0 && feeBps == 0) return;
        uint256 maxWindow = inBlocks ? c.maxLaunchWindowBlocks : c.maxLaunchWindowS;
        if (
            window == 0 || window > maxWindow || feeBps > c.maxLaunchFeeBps
                || feeBps <= uint256(c.platformFeeBps) + c.creatorFeeBps
        ) revert InvalidLaunchFee();
    }

    /// @dev The CREATE2 salt: the job's salt bound to the launch's terms.
    function _addressSalt(
        bytes32 salt,
        address creator,
        uint256 supply,
        uint16 launchFeeBps,
        uint32 launchWindow,
        bool windowInBlocks
    ) private pure returns (bytes32) {
        return keccak256(abi.encode(salt, creator, supply, launchFeeBps, launchWindow, windowInBlocks));
    }

    function _checkArgs(bytes calldata args) private pure {
        if (args.length < 4) revert InvalidArgs();
        uint256 nameLen = uint8(args[1]);
        if (nameLen == 0 || nameLen > 128) revert InvalidArgs();
        if (args.length < 2 + nameLen + 1 || args.length > 2 + nameLen + 10) revert InvalidArgs();
    }
}
