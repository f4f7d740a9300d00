"""The pinned PyPI packages that ship real benchmark data, and the SHA-256 of every file taken
from them (computed once from the real archives); :mod:`.benchmark_fetch` fetches them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BenchmarkSource:
    """One pinned package and the files taken from it.

    ``member_dir``: the folder inside the archive holding ``files`` (for an sdist, below its
    top-level ``<name>-<version>/`` folder); ``files``: file name -> SHA-256 of its bytes.
    ``pip_args``: extra ``pip download`` options (the wheel's tags, ``--no-binary``).
    """

    name: str
    requirement: str
    member_dir: str
    files: dict[str, str]
    license: str
    pip_args: tuple[str, ...] = field(default=())

    @property
    def package(self) -> str:
        return self.requirement.split("==")[0]


# SHA-256 of each file as it is stored in the archive (computed from the real archives).
_AAANALYSIS = {
    "AA_CASPASE3.tsv": "22769d123e2c8ce9a7919371e7bb4d0d1abc57006c741dc1367e810c7e65227a",
    "AA_FURIN.tsv": "79b1688d72a51ed3bd2e10c491999fdcaffc0b8a75c99afe682222fd07dd79d7",
    "AA_LDR.tsv": "486b09b2d5a81546ad7c5975ef5ece91267a06a2f6489fde334ac9a8895cdf3e",
    "AA_MMP2.tsv": "f1a1a27eb621319724dfaa64d5b7dc2b7177835d8fc2bfab3c79fc69ab853842",
    "AA_RNABIND.tsv": "2ffa8e6bd4b1972b1e11c56f6e4f2440ce5674bfaf3de90a67954bcf26d48524",
    "AA_SA.tsv": "bd9477abd09054e3de4408cef0331f4839eb8d893b96dd979fe101d520c71178",
    "DOM_GSEC.tsv": "4f382975c4a86b2db5301086196d3fcdd8bdc305e4ae9e796a61c1fb3fa03e3b",
    "DOM_GSEC_PU.tsv": "7ab2ee9c8264785effbfed7d3119cc3c94853d6fc86efa362f57f01c190a3330",
    "Overview.tsv": "88d22990e242088a3da8c582d2308c2e511b64896aa825eb9318704643b63dae",
    "SEQ_AMYLO.tsv": "a933e287ff0a6673f33adcf034453519812939c7c37facc7a0611556feaa82ca",
    "SEQ_CAPSID.tsv": "0a1c3195542b8f791b60b8d81ca4016b1dd21c76d8eeb86c5cbc1dffb58a3fa6",
    "SEQ_DISULFIDE.tsv": "fd4227f4e14cfed1e5042973e40acad3eb300ab712accf35fcf2ade31d7f23e5",
    "SEQ_LOCATION.tsv": "839a8161e19cf08457447db7096e66af9e258f5ec997cd153cdcdfce5f282172",
    "SEQ_SOLUBLE.tsv": "42329d19c4663e9fcd2e097f111263e0f2597d03c989afb5e1a13db824340226",
    "SEQ_TAIL.tsv": "7a55dda545e0191fb72385905637edfa704d9807e6d4e2b562b71bcdc86c35ed",
}
_DSSP = {
    "1ahsA.pdb.gz": "3e0b57122db5924686531040c224b3ed112c0f8b4258076c8582d62c2ad87e36",
    "1ahsA.pdb.dssp": "608bf6ef1df020789767f8f2e5297cc71187a903f6d0619c5ac3b8817fb91733",
    "1bvyF.pdb.gz": "df97aca34cf46efd3629758f6bd04f960665a3556f201770f4d0674c525e3746",
    "1bvyF.pdb.dssp": "26dfba17791f32cce82ba34151af2c199c3356123f51ec0df596c263ce577f99",
    "1dx5I.pdb.gz": "e1ab2601c5ca160c9662a6c05dc8996a844d4cc664eac8972a16181e1e108a52",
    "1dx5I.pdb.dssp": "a15e2f3f01f75c17af73231e11f72166c2edc9c8bb9660430a8e6142c2cbd43c",
    "1eteA.pdb.gz": "4af0dda9b4e8e1749df9bba413177b26c1fefd884cc197b2b9f07d33b83a5577",
    "1eteA.pdb.dssp": "1dc05b646f43eec6bfc6068941aafcd7db765c0f8aa7b3c64394743e5dbd145a",
    "1h4aX.pdb.gz": "a5487546996263b69f2f37d14e8c2846528336781ba2d6221d7e97e5ef5a0527",
    "1h4aX.pdb.dssp": "c23bbfe68f85967b1fe2f3b562a62ec00c092c37c0534290c83db69a17028ade",
    "1i8nA.pdb.gz": "4fdb358cb8e7ae210455da47652a4ba5ca99902c50b0fd6a575207617582fb48",
    "1i8nA.pdb.dssp": "6af86d2ea1597148abaa64bbc95a2b6afac127bd3e0c63b1538094352ce43aa5",
    "1lpbA.pdb.gz": "9a742fc9aa3ef164ddea596a3a9e70b96419a6c649ecb7584dc49008ef816a24",
    "1lpbA.pdb.dssp": "4a3d017f4efc2a0a656f6a9198a8c7d821e31efb22b2156c65bcd81a47058b28",
    "1mr1D.pdb.gz": "d019a85f0893789b1b81101a83763da02e471a85010177063fac75dc024ebe22",
    "1mr1D.pdb.dssp": "1efb774be85c6e9e63093edbcc5d701c66415f36d74ffcd0822bc452f3abbc84",
    "1or4A.pdb.gz": "b2206ff04c10f61c44a9bf615aaf44d460a893118707c8cf0df1eb6f7d05f8fe",
    "1or4A.pdb.dssp": "dd0fded215ce2fd4fed3e10b2e2cbd36cfc376e98695771fa0534227c71b4e01",
    "1pdoA.pdb.gz": "aa818800e4e726cf22bb5b00f569494ba863868ede93c2ad9d44f92f33d1de89",
    "1pdoA.pdb.dssp": "dd6b7174b8698833aa4ee67fbbd021cf4da32f49a95af73ecedbfe140a934027",
    "1v7mV.pdb.gz": "11da947f231df43d2c24acc2513030449e0e1e6136b7706644453c0c575e0057",
    "1v7mV.pdb.dssp": "a0ef4eb4c15e7532842243b8aa502143ec71d1916c6360238c65d0f27ac22089",
    "1y1lA.pdb.gz": "84c011aae1de31f12d58a12c7da221526e97770b19c38dc13a47700b66867914",
    "1y1lA.pdb.dssp": "55ddcaf870c3da36ff63c37c3d85ee22ded3d812fdecf538e6727ccb7ee2e190",
    "2a2lA.pdb.gz": "b0d16298bc4701c99fd2af47c79d3cf85ec76c22ad432bfd1ad24372f2fe6364",
    "2a2lA.pdb.dssp": "7562d4606281f9b46b60e9757384308dd6fb412c0306bf0f859eddf57299e3e3",
    "2cayA.pdb.gz": "ad2e79936538fae2b77897c45aa077ae3b29c335ac03bc6fd8d306d1566aedf5",
    "2cayA.pdb.dssp": "fb8aacb0ef659de1445cd5dc7bfb6b30a2d50469cd1e579de8017800a30cb9ee",
    "2cviA.pdb.gz": "f9d1600d56f441a9dc63e0fb3d4b9617b86fbc33f73ef55daf819998bcd7b43f",
    "2cviA.pdb.dssp": "efcbaf034dd88ca1deef0005167af600f9c8c544703322a4fd7d73f54208d5c8",
    "2fvvA.pdb.gz": "80c3ec34252c2b73fa3536c3aed42cf34d982a5e9eae0a82f1dc0b5730db0492",
    "2fvvA.pdb.dssp": "fad40ce2ec579caf2bb2c8c624d62b8f5782f069910951c2e062d60ee213ac5f",
    "2gu3A.pdb.gz": "2c2a996ce9123338309c3cc4f05189eaf41402ff1f81eeaabbb9050f50ef6e13",
    "2gu3A.pdb.dssp": "677a26d09916cd678becac97a7d12f80b2d11ee739fb5aa29c81da4d353701d5",
    "2i39A.pdb.gz": "0e31b4b9e32146f51c32229639a035b6e9be05b49db4c07e757527826bba6ba9",
    "2i39A.pdb.dssp": "dd7f78b487e29d95b7a36ffbf547b7623b97d3e909f6ed2d271746ec2111fd51",
    "2j49A.pdb.gz": "6b7820e85268de1b92dd7ba483274bd8f8ce2337ae0cc93352918e3375356423",
    "2j49A.pdb.dssp": "1e7d0f8b938ba42d5e19eec45ad9242da0dde37bc2c263258124eaab694ddd0e",
    "2qdlA.pdb.gz": "d5da1b8ff5b1d7d86db5f5c77b7074e622fba34d036e667aba9cf97b1e29a66a",
    "2qdlA.pdb.dssp": "bca80f40b94d231b2d408fb8a376a5e998fa8b2e222c77e3b93928e7bc60c5e2",
    "2va0A.pdb.gz": "bd9d428ccfe2055ec91e1098741ec929e7a1e82263d2e6d6e1b8a308b85d3295",
    "2va0A.pdb.dssp": "b42326d3ca56df4c95e6fb10f218feb2f0f6b692acd8fd1112375e397f15f1ef",
    "2xcjA.pdb.gz": "41464e5fe0cf0d3dd57c54ce4760624eadd50ea4e30b58b237e6299d533c8cc6",
    "2xcjA.pdb.dssp": "3ee5eafb5fb865a45bf2cf014fd9a8ab1635dfd35d664cb7f041dfb51d137703",
    "2xdgA.pdb.gz": "e711a121ddec6bf6a80844591f445a1300cf48cb72af340cc533053979502e54",
    "2xdgA.pdb.dssp": "b592c4fc2a730626a423ae89cf45bffbdce46789c93ca63a5562ad1b57810e54",
    "2xr6A.pdb.gz": "f2b3d592eb86e56931d61576cb1f8a083042886fad7ba1f30ee4c7d90ffb4a0a",
    "2xr6A.pdb.dssp": "a8379a70421205ed585569a51ac7a4b399653897c702eecd5084bd9686f5e074",
    "3a4rA.pdb.gz": "f1f9fcd403785e610ba9920230819925b87cfacfe9cf6bbc8fdb225e503a1480",
    "3a4rA.pdb.dssp": "f0b2c5ed33d53ddcc05228a0d686fbb22b8c2b7e4b2c25756d77934a3a3da695",
    "3aqgA.pdb.gz": "b50f4ba6b8be2d5f3f7d4954933f7a0549d14adb60dc808ef18168f85cbf4097",
    "3aqgA.pdb.dssp": "eb2b96796d3dbc40c5963525e39f29beb9929b9793895b85933e031ebdfce8c1",
    "3e8mA.pdb.gz": "c4359b5d0a7e37efd37737eeaf7438d20f8aa715d625351c57f8dff7be469358",
    "3e8mA.pdb.dssp": "d6eeb24552b06968442f3af6365aa847da629834fd6c0016a8b68c7405a7d208",
    "3ejfA.pdb.gz": "c2d934fe8da12b324ef0024e8b5361b16d86ac8f69002260c3da39711abc3f4c",
    "3ejfA.pdb.dssp": "3e316895034f72e095e77d7eff1d97a33e272f0709bd9f7e1b490b24de1f916a",
    "3fhkA.pdb.gz": "54bb211f5666b1c213def090765e57478ebd48616fd7c86f7eefb7c6db08e00f",
    "3fhkA.pdb.dssp": "be98da39f5f8a84f90d9c062972ae16341b8a1a5ce53091b52c7d8b510a473cd",
    "3gfsA.pdb.gz": "b7852d83d90675b904e3eb447d8853545d37d57ba4aea50de0dfd5420b75c8f5",
    "3gfsA.pdb.dssp": "109399952141d9fac51b6632acde36d4f582d2007811ed5e91cc740a29af6893",
    "3gknA.pdb.gz": "ff5d795381e9e76a842db9ca51f0fe9ec84cc47ae35dbd018bce7d15c797afad",
    "3gknA.pdb.dssp": "ae9f19e0722d80b1d4017417a6ef96fd3f9f2c449d9c74b39091c82c99bcc69c",
    "3gwiA.pdb.gz": "728ea7e36958eb8301c443283543f07723e4ca6a2fa9a2107b69f8ed3dd7d9af",
    "3gwiA.pdb.dssp": "88bd0cfff4b3fb4076248f1157b6f89661b42ca196d6902ae0c5b2e7e17f481f",
    "3hklA.pdb.gz": "03cd3b5f11911f266bd32c31292e3453c09d83f7b149c22de69b63fc9c333716",
    "3hklA.pdb.dssp": "ab025be206d03dad6f539c8b6a02a47d37aba1a2872758e60fc8da67f78420ba",
    "3ieyB.pdb.gz": "fb9808b60e3ea4300651cbcee3595e0eb04aa906e9b7f4c77435a1ab0f22a577",
    "3ieyB.pdb.dssp": "b2b37476d4664db6341c6bf2e940a86a4e52c4d9b29ba0f0e8fdf672bbbe82cb",
    "3ii2A.pdb.gz": "bde2dc456d1e1dfec71e7a91d5a51e164ee9b5e93ab5b7781c71767bbe00771d",
    "3ii2A.pdb.dssp": "b90ae5eecf3dbe9dd85592962e8345cf1d3342b07e33f473d9165698be28c5d4",
    "3k7pA.pdb.gz": "72057f8b8c164585fd0f183694e302fb39a7b010f8cba302fee2f56a7aab440e",
    "3k7pA.pdb.dssp": "51df6dc268542742ee59c5f2b3e02ffe290ff26a29ab1d62e1ff0960d53367c6",
    "3l4rA.pdb.gz": "edb3def2e72891bc7a7da2ceae86550504950a90c2f07572130ddc9ca7f87420",
    "3l4rA.pdb.dssp": "0f1d026b8e7304dd4ca7d3a882d2073be522c69b56345dbdf3f83738becb086d",
    "3lqcA.pdb.gz": "0a9bda07ea9545b7c879b9307975aa0597f298e3dc7b9ee50d39679af08768a5",
    "3lqcA.pdb.dssp": "d0302d0a65c1671342af5c92e3d5d1a6b224634f770e659c1ddfac035cf3c7ef",
    "3nbkA.pdb.gz": "f2ac05d7f7a030b7a27fe68311aaf4c576305bb10fa763589c706822684bc6bc",
    "3nbkA.pdb.dssp": "d8d1aaf9ebc6929ec8f36f7cc6b7f48fd9d2ce6863e1fa24014fd4c44358254b",
    "3nngA.pdb.gz": "ad630bcc96f281ab07683d89fbf88756c5308d1b8ffb23541c050e6ed730b81e",
    "3nngA.pdb.dssp": "50d09262b8e99710c015eaa15730cfc8ab88756a7e02f2b5b944b6b881e31e30",
    "3ny7A.pdb.gz": "817a38bb9044623e4a858a7b29d7d6d107ec93d5359c65e176dcc9e252c1c1d5",
    "3ny7A.pdb.dssp": "0ca465de41deb36a9523e10af0f3e1df294f799fe2fc58d4c5d285b5ceb8fe82",
    "3nzmA.pdb.gz": "8a9d79d58bbb213afa5f38abd3ca8e80da1ac92b2cb587a0ca23f17afd467223",
    "3nzmA.pdb.dssp": "b319745e8c9019d9140b8893bba7277988bb4f94708f878103f2eaf46a122fb8",
    "3on9A.pdb.gz": "17b5ec3df1729134bf0e9de514a7cbf1adeb64d8a2707194ae2f06bda5b51999",
    "3on9A.pdb.dssp": "1cc1ca1ad9b3df51d00f3963bb94b2fce097afdcaf841e04da0f2fe48370b74e",
    "3pivA.pdb.gz": "30f33d4ebf5b3d3f3ea089ad99b5a9eeccd3be71cf7c5687552860549bd1de9b",
    "3pivA.pdb.dssp": "8ad31b02b0b3edbbb7e77fbc32e732f15c9b8d6e4e0b7818a8865853f2e3fb46",
    "3q4oA.pdb.gz": "92e3d24ca6eee1e7f008a2c2b1ee3d8d3627aa7dce7d2b909c64c4b0c6c79689",
    "3q4oA.pdb.dssp": "17067a4604f43f4b7aeb86f1e28d8336627395fba370eea900ddebea447cb007",
    "3so6A.pdb.gz": "f737ba3ca39cad1807c5dacc44d568b24512b89d3433fd77a9741644add085da",
    "3so6A.pdb.dssp": "3483e5a4df20fde70ebf9d8ec9bd10f25a33729ba29e159089e96dc4e2eb8da4",
    "3t5gB.pdb.gz": "60164a80a680ff5b413dd102f2bc4d89b36ccc8745ab9eee80d71d2a551dfdf6",
    "3t5gB.pdb.dssp": "6906b6ceb383d070f51b2b5bec9290b5e9e1375999344fe0f9f17283e0d5fc71",
    "3vjzA.pdb.gz": "797a378274af5f0e56d82e2892f509a451c3615657e4350977c0f3675aefbcb5",
    "3vjzA.pdb.dssp": "4d646b2de13173e1396988d7c631b341e3ce3e450b09518161f6b2ed5149fb8f",
    "4dkcA.pdb.gz": "53e5b8080e198b9e84a3a9c2213c1d128408a63c04997efa3671be56eda3acf0",
    "4dkcA.pdb.dssp": "be9414563efaab1ec24eb87e6434fbeaa318399190524aa88639b4ce105abfa2",
    "4gcnA.pdb.gz": "cb6c7055a8e02bee7f19feee91d07e8b11b01b2ebedc9626e61a5386af629f2b",
    "4gcnA.pdb.dssp": "c0727fc3cd8d9344329356ac7b04d2b8f9cbd28d9241361f986fd2aadfd26fb2",
}

# aaanalysis ships platform wheels only: ask pip for one fixed wheel whatever the interpreter,
# so every machine gets the same archive (its data files are the same in every wheel).
_WHEEL_311 = (
    "--only-binary=:all:",
    "--platform=manylinux2014_x86_64",
    "--python-version=3.11",
    "--implementation=cp",
    "--abi=cp311",
)

SOURCES: tuple[BenchmarkSource, ...] = (
    BenchmarkSource(
        "mavenn",
        "mavenn==1.1.4",
        "mavenn/examples/datasets",
        {
            "gb1_data.csv.gz": "c1334244ab0112f55c2a850840e8126d2d285d91a4623c3306e02b7f7a540eb7",
            "amyloid_data.csv.gz": (
                "4b5292241908db39e198aecd59a0e4d0e0ff00dea67e0af3085686023fb91dfa"
            ),
            "tdp43_data.csv.gz": "50fcb1603afd0300cd54d8ce795551a50638613b7b967cd489ed85a91c6534da",
            "nisthal_data.csv.gz": (
                "4a51fb30dce9b57786c4b1ad7630cfd03f44cbe7b4a7d5430e278884936826fa"
            ),
        },
        "MIT",
    ),
    BenchmarkSource(
        "aaanalysis",
        "aaanalysis==1.1.0",
        "aaanalysis/_data/benchmarks",
        _AAANALYSIS,
        "BSD-3-Clause",
        _WHEEL_311,
    ),
    BenchmarkSource(
        "dssp",
        "MDAnalysisTests==2.11.0",
        "MDAnalysisTests/data/dssp",
        _DSSP,
        "LGPL-3.0-or-later (the package); structures from the PDB",
        ("--no-binary=MDAnalysisTests",),
    ),
)
SOURCE_NAMES = tuple(s.name for s in SOURCES)
