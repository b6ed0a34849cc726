// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

interface ICurveToken {
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

interface IWETH {
    function deposit() external payable;
    function transfer(address to, uint256 value) external returns (bool);
}

interface IUniswapV2FactoryLike {
    function getPair(address a, address b) external view returns (address);
    function createPair(address a, address b) external returns (address);
}

interface IUniswapV2PairLike {
    function mint(address to) external returns (uint256 liquidity);
}

interface IFeeRecipientSource {
    function feeRecipient() external view returns (address);
}

/// @title TokenForge bonding curve, one per token, used only through clones with immutable args.
/// @notice Constant product over virtual reserves (pump.fun's shape); the rules and their
///         rounding are those of `tokenforge.domain.curve` (property-tested against this
///         contract). The token's whole supply is minted here at launch; buyers pay native
///         coin and get tokens, sellers give tokens back and get native coin. When the last
///         token for sale is bought the same transaction graduates the curve: the raised
///         native (minus the migration fee) and the unsold supply become liquidity of a
///         Uniswap V2 pair whose LP tokens are burnt, and the curve never trades again.
///
///         Clone args (98 bytes, built by the factory, prefixed with the token by the token):
///         abi.encodePacked(address token, address creator, uint112 supply,
///         uint112 virtualNative0, uint16 platformFeeBps, uint16 creatorFeeBps,
///         uint16 launchFeeBps, uint32 launchWindow, uint8 windowInBlocks,
///         uint112 migrationFee, uint40 launchedAt)
contract TokenForgeCurve is ReentrancyGuardTransient {
    uint256 private constant BPS = 10_000;
    uint256 private constant VIRTUAL_TOKEN_PER_MILLE = 1073;
    uint256 private constant FOR_SALE_PER_10K = 7931;

    /// @notice The factory whose fee recipient receives the platform's fees.
    address public immutable factory;
    address public immutable uniswapFactory;
    address public immutable weth;

    struct Params {
        address token;
        address creator;
        uint256 supply;
        uint256 virtualNative0;
        uint256 platformFeeBps;
        uint256 creatorFeeBps;
        uint256 launchFeeBps;
        uint256 launchWindow;
        bool windowInBlocks;
        uint256 migrationFee;
        uint256 launchedAt;
    }

    /// @notice Native the curve holds for its buyers (virtual native = virtualNative0 + this).
    uint128 public nativeRaised;
    /// @notice Tokens bought and not sold back (virtual tokens = virtualToken0 - this).
    uint128 public tokensSold;
    /// @notice Fees accrued and not yet claimed.
    uint112 public creatorFees;
    uint112 public platformFees;
    bool public graduated;

    event Trade(
        address indexed trader,
        bool isBuy,
        uint256 nativeAmount,
        uint256 tokenAmount,
        uint256 fee,
        uint256 virtualNative,
        uint256 virtualToken
    );
    event Graduated(
        address indexed pair, uint256 nativeLiquidity, uint256 tokenLiquidity, uint256 liquidityBurnt, uint256 migrationFee
    );
    event FeesClaimed(address indexed recipient, uint256 amount, bool creator);

    error Expired();
    error Slippage();
    error ZeroAmount();
    error CurveComplete();
    error NotComplete();
    error InsufficientReserve();
    error NotCreator();
    error PaymentFailed();

    constructor(address uniswapFactory_, address weth_) {
        factory = msg.sender;
        uniswapFactory = uniswapFactory_;
        weth = weth_;
    }

    /// @notice Buys with all of `msg.value`; at least `minTokensOut` or the call reverts. A buy
    ///         larger than what is left gets what is left, is refunded the rest, and graduates.
    function buy(uint256 minTokensOut, uint256 deadline) external payable nonReentrant returns (uint256 tokensOut) {
        if (block.timestamp > deadline) revert Expired();
        Params memory p = params();
        uint256 raised = nativeRaised;
        uint256 sold = tokensSold;
        uint256 left = p.supply * FOR_SALE_PER_10K / BPS - sold;
        if (left == 0) revert CurveComplete();
        uint256 amountIn = msg.value;
        if (amountIn == 0) revert ZeroAmount();
        uint256 feeBps = _feeBps(p);
        uint256 fee = _ceilDiv(amountIn * feeBps, BPS);
        uint256 net = amountIn - fee;
        uint256 vq = p.virtualNative0 + raised;
        uint256 vt = p.supply * VIRTUAL_TOKEN_PER_MILLE / 1000 - sold;
        tokensOut = net * vt / (vq + net);
        uint256 charged = amountIn;
        if (tokensOut >= left) {
            tokensOut = left;
            net = _ceilDiv(left * vq, vt - left);
            charged = _ceilDiv(net * BPS, BPS - feeBps);
            if (charged > amountIn) charged = amountIn;
            fee = charged - net;
        }
        if (tokensOut == 0) revert ZeroAmount();
        if (tokensOut < minTokensOut) revert Slippage();
        nativeRaised = uint128(raised + net);
        tokensSold = uint128(sold + tokensOut);
        _accrue(p, fee);
        ICurveToken(p.token).transfer(msg.sender, tokensOut);
        emit Trade(msg.sender, true, charged, tokensOut, fee, vq + net, vt - tokensOut);
        if (tokensOut == left) _graduate(p);
        if (charged < amountIn) _pay(msg.sender, amountIn - charged); // last: after graduation
    }

    /// @notice Sells `tokensIn` of the caller's tokens (no approval needed: the token lets its
    ///         curve pull tokens to itself); at least `minNativeOut` or the call reverts.
    function sell(uint256 tokensIn, uint256 minNativeOut, uint256 deadline)
        external
        nonReentrant
        returns (uint256 nativeOut)
    {
        if (block.timestamp > deadline) revert Expired();
        Params memory p = params();
        uint256 raised = nativeRaised;
        uint256 sold = tokensSold;
        if (sold == p.supply * FOR_SALE_PER_10K / BPS) revert CurveComplete();
        if (tokensIn == 0) revert ZeroAmount();
        if (tokensIn > sold) revert InsufficientReserve();
        uint256 vq = p.virtualNative0 + raised;
        uint256 vt = p.supply * VIRTUAL_TOKEN_PER_MILLE / 1000 - sold;
        uint256 gross = tokensIn * vq / (vt + tokensIn);
        if (gross > raised) revert InsufficientReserve();
        uint256 fee = _ceilDiv(gross * _feeBps(p), BPS);
        nativeOut = gross - fee;
        if (nativeOut < minNativeOut) revert Slippage();
        nativeRaised = uint128(raised - gross);
        tokensSold = uint128(sold - tokensIn);
        _accrue(p, fee);
        ICurveToken(p.token).transferFrom(msg.sender, address(this), tokensIn);
        emit Trade(msg.sender, false, nativeOut, tokensIn, fee, vq - gross, vt + tokensIn);
        _pay(msg.sender, nativeOut);
    }

    /// @notice Graduates a sold-out curve. The last buy does it itself, so this only ever
    ///         reverts: `NotComplete` before, `CurveComplete` after; it exists for tooling.
    function graduate() external nonReentrant {
        if (graduated) revert CurveComplete();
        Params memory p = params();
        if (tokensSold != p.supply * FOR_SALE_PER_10K / BPS) revert NotComplete();
        _graduate(p);
    }

    /// @notice Pays the creator's accrued fees to the creator; only the creator may call it.
    function claimCreatorFees() external nonReentrant returns (uint256 amount) {
        address creator = params().creator;
        if (msg.sender != creator) revert NotCreator();
        amount = creatorFees;
        creatorFees = 0;
        emit FeesClaimed(creator, amount, true);
        _pay(creator, amount);
    }

    /// @notice Pays the platform's accrued fees to the factory's fee recipient; anyone may call it.
    function claimPlatformFees() external nonReentrant returns (uint256 amount) {
        address recipient = IFeeRecipientSource(factory).feeRecipient();
        amount = platformFees;
        platformFees = 0;
        emit FeesClaimed(recipient, amount, false);
        _pay(recipient, amount);
    }

    /// @notice (virtual native, virtual token, real native, real token) reserves.
    function reserves() external view returns (uint256, uint256, uint256, uint256) {
        Params memory p = params();
        uint256 forSale = p.supply * FOR_SALE_PER_10K / BPS;
        return (
            p.virtualNative0 + nativeRaised,
            p.supply * VIRTUAL_TOKEN_PER_MILLE / 1000 - tokensSold,
            nativeRaised,
            forSale - tokensSold
        );
    }

    /// @notice The fee in basis points a trade in this block pays.
    function currentFeeBps() external view returns (uint256) {
        return _feeBps(params());
    }

    /// @notice The launch parameters kept in this clone's code.
    function params() public view returns (Params memory p) {
        bytes memory a = Clones.fetchCloneArgs(address(this));
        uint256 w0;
        uint256 w1;
        uint256 w2;
        uint256 w3;
        assembly ("memory-safe") {
            w0 := mload(add(a, 32)) // token(20) creator[0:12]
            w1 := mload(add(a, 52)) // creator(20) supply[0:12]
            w2 := mload(add(a, 72)) // supply(14) virtualNative0(14) fees[0:4]
            w3 := mload(add(a, 100)) // fees(6) window(4) inBlocks(1) migrationFee(14) launchedAt(5)
        }
        p.token = address(uint160(w0 >> 96));
        p.creator = address(uint160(w1 >> 96));
        p.supply = w2 >> 144;
        p.virtualNative0 = (w2 >> 32) & type(uint112).max;
        p.platformFeeBps = w3 >> 240;
        p.creatorFeeBps = (w3 >> 224) & 0xffff;
        p.launchFeeBps = (w3 >> 208) & 0xffff;
        p.launchWindow = (w3 >> 176) & 0xffffffff;
        p.windowInBlocks = ((w3 >> 168) & 0xff) != 0;
        p.migrationFee = (w3 >> 56) & type(uint112).max;
        p.launchedAt = (w3 >> 16) & 0xffffffffff;
    }

    function _feeBps(Params memory p) private view returns (uint256) {
        uint256 base = p.platformFeeBps + p.creatorFeeBps;
        if (p.launchWindow == 0 || p.launchFeeBps <= base) return base;
        uint256 nowAt = p.windowInBlocks ? block.number : block.timestamp;
        uint256 elapsed = nowAt > p.launchedAt ? nowAt - p.launchedAt : 0;
        if (elapsed >= p.launchWindow) return base;
        return base + _ceilDiv((p.launchFeeBps - base) * (p.launchWindow - elapsed), p.launchWindow);
    }

    function _accrue(Params memory p, uint256 fee) private {
        if (fee == 0) return;
        uint256 base = p.platformFeeBps + p.creatorFeeBps;
        uint256 creatorShare = base == 0 ? 0 : fee * p.creatorFeeBps / base;
        creatorFees += uint112(creatorShare);
        platformFees += uint112(fee - creatorShare);
    }

    function _graduate(Params memory p) private {
        graduated = true;
        uint256 raised = nativeRaised;
        uint256 migrationFee = p.migrationFee < raised ? p.migrationFee : raised;
        uint256 nativeLiquidity = raised - migrationFee;
        uint256 tokenLiquidity = p.supply - tokensSold;
        platformFees += uint112(migrationFee);
        IUniswapV2FactoryLike uni = IUniswapV2FactoryLike(uniswapFactory);
        address pair = uni.getPair(p.token, weth);
        if (pair == address(0)) pair = uni.createPair(p.token, weth);
        // the token refuses transfers to its pair until `graduated`: nobody priced it before us
        ICurveToken(p.token).transfer(pair, tokenLiquidity);
        IWETH(weth).deposit{value: nativeLiquidity}();
        IWETH(weth).transfer(pair, nativeLiquidity);
        uint256 liquidity = IUniswapV2PairLike(pair).mint(address(0));
        emit Graduated(pair, nativeLiquidity, tokenLiquidity, liquidity, migrationFee);
    }

    function _pay(address to, uint256 amount) private {
        if (amount == 0) return;
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert PaymentFailed();
    }

    function _ceilDiv(uint256 a, uint256 b) private pure returns (uint256) {
        return a == 0 ? 0 : (a - 1) / b + 1;
    }
}
